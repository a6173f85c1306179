#!/usr/bin/env node
// `npm start` and `npm run demo:local` build first only when something tsc reads (src/,
// tsconfig.json) changed since the last build started: a second start costs no compile.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, STAMP } from './build.mjs';

/** Why root's dist/ needs a build, or undefined when it is current. */
export function staleReason(root) {
  let built;
  try {
    built = statSync(join(root, STAMP)).mtimeMs;
    statSync(join(root, 'dist', 'cli', 'main.js'));
  } catch {
    return 'no finished build in dist/';
  }
  const newer = (path) => statSync(path).mtimeMs > built;
  if (newer(join(root, 'tsconfig.json'))) return 'tsconfig.json changed';
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const found = e.isDirectory() ? walk(p) : newer(p) ? p : undefined;
      if (found) return found;
    }
    return undefined;
  };
  const changed = walk(join(root, 'src'));
  return changed ? `${changed.slice(root.length).replace(/^\//, '')} changed` : undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const reason = staleReason(root);
  if (reason) {
    console.error(`building dist/ (${reason})`);
    process.exitCode = await build(root);
  }
}
