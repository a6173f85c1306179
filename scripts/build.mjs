#!/usr/bin/env node
// `npm run build`: compiles src/ to dist/ with tsc (incremental: its build info is kept in
// dist/.tsbuildinfo, so an unchanged tree is checked in seconds), makes the bin executable, and
// stamps dist/ with the time the build started, so `npm start` can tell whether a source changed
// since (scripts/build-if-stale.mjs).

import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, openSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const STAMP = join('dist', '.build-stamp');

/** Builds root's dist/; returns tsc's exit code. */
export function build(root) {
  const started = new Date();
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) return r.status ?? 1;
  chmodSync(join(root, 'dist', 'cli', 'main.js'), 0o755);
  // The start time, not the end: a file saved while tsc ran is newer than the stamp, so rebuilt next time.
  closeSync(openSync(join(root, STAMP), 'w'));
  utimesSync(join(root, STAMP), started, started);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = build(fileURLToPath(new URL('..', import.meta.url)));
}
