#!/usr/bin/env -S node --single-threaded-gc --v8-pool-size=1
// The `pillion` command's entry. The V8 flags suit a sidecar: collecting on the main thread spares
// a wake-up of helper threads per collection, which costs a proxy more than it saves; and one
// background thread for V8's compiling rather than four keeps one malloc arena rather than four,
// each of which keeps the megabytes compiling the hot code once took (5 MB less resident for a
// 10 000-series scrape, README "Metrics"), where the proxy runs on one core anyway. The young
// generation keeps its default size: a small one promotes the log role's in-flight events and
// costs it more memory, not less (see README, Performance).
// Before anything else loads, V8's compile cache is turned on where Node has it (22.1 and later):
// a later start reads the compiled code of Pillion and its libraries instead of compiling it
// again. It lives in $NODE_COMPILE_CACHE, else in the temp directory; where neither can be
// written, Node carries on without it (NODE_DISABLE_COMPILE_CACHE=1 turns it off).

import module from 'node:module';

(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
await import('./program.js');
