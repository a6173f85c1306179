#!/usr/bin/env -S node --single-threaded-gc
// The `pillion` command's entry. The V8 flag suits a sidecar: collecting on the main thread spares
// a wake-up of helper threads per collection, which costs a proxy more than it saves. The young
// generation keeps its default size: a small one promotes the log role's in-flight events and
// costs it more memory, not less (see README, Performance).
// Before anything else loads, V8's compile cache is turned on where Node has it (22.1 and later):
// a later start reads the compiled code of Pillion and its libraries instead of compiling it
// again. It lives in $NODE_COMPILE_CACHE, else in the temp directory; where neither can be
// written, Node carries on without it (NODE_DISABLE_COMPILE_CACHE=1 turns it off).

import module from 'node:module';

(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
await import('./program.js');
