// `npm start` compiles only when a source changed since the last build started, so a second start
// does not spend a full tsc run (about 20 s on a small machine) before the demo.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const root = new URL('../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pillion-build-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type StaleReason = (root: string) => string | undefined;
const { staleReason } = (await import(new URL('scripts/build-if-stale.mjs', `file://${root}`).href)) as {
  staleReason: StaleReason;
};

/** A tree with sources and a finished build; times in seconds since the epoch. */
function tree(times: { stamp?: number; source: number; nested: number; tsconfig: number }): string {
  const t = mkdtempSync(join(dir, 'tree-'));
  mkdirSync(join(t, 'src', 'cli'), { recursive: true });
  mkdirSync(join(t, 'dist', 'cli'), { recursive: true });
  const file = (path: string, at: number) => {
    writeFileSync(join(t, path), '');
    utimesSync(join(t, path), at, at);
  };
  file('tsconfig.json', times.tsconfig);
  file('src/roles.ts', times.source);
  file('src/cli/main.ts', times.nested);
  file('dist/cli/main.js', 1000);
  if (times.stamp !== undefined) file('dist/.build-stamp', times.stamp);
  return t;
}

test('a build is needed only when something tsc reads is newer than the last build', () => {
  assert.equal(staleReason(tree({ stamp: 2000, source: 1000, nested: 1000, tsconfig: 1000 })), undefined);
  assert.equal(
    staleReason(tree({ source: 1000, nested: 1000, tsconfig: 1000 })),
    'no finished build in dist/',
  );
  assert.equal(
    staleReason(tree({ stamp: 2000, source: 1000, nested: 3000, tsconfig: 1000 })),
    'src/cli/main.ts changed',
  );
  assert.equal(
    staleReason(tree({ stamp: 2000, source: 1000, nested: 1000, tsconfig: 3000 })),
    'tsconfig.json changed',
  );
});

test('npm start and demo:local build only when stale; npm test and npm ci always build', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.match(pkg.scripts.start!, /^node scripts\/build-if-stale\.mjs && /);
  assert.match(pkg.scripts['demo:local']!, /^node scripts\/build-if-stale\.mjs && /);
  assert.match(pkg.scripts.test!, /^npm run build /);
  assert.equal(pkg.scripts.prepare, 'npm run build');
  const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as {
    compilerOptions: Record<string, unknown>;
  };
  assert.equal(tsconfig.compilerOptions.incremental, true);
  assert.equal(tsconfig.compilerOptions.tsBuildInfoFile, 'dist/.tsbuildinfo', 'removed with dist/');
});
