#!/usr/bin/env node
// `npm run build`: compiles src/ to dist/ with tsc (incremental: its build info is kept in
// dist/.tsbuildinfo, so an unchanged tree is checked in seconds), bundles the command into
// dist/bin/ (the package's bin), and stamps dist/ with the time the build started, so `npm start`
// can tell whether a source changed since (scripts/build-if-stale.mjs).
//
// The bundle: esbuild makes one file of the command and the libraries it always needs, and one
// chunk per dynamic import() (a subcommand, a role), so a start reads and compiles a few files
// instead of resolving some 250 modules, and what the config does not use is still not loaded.
// Tests run the modules tsc wrote (dist/cli/main.js and the rest); test helpers are never
// imported by the command, so they are not in the bundle.

import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, openSync, rmSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const STAMP = join('dist', '.build-stamp');

/** Builds root's dist/; resolves to tsc's exit code. */
export async function build(root) {
  const started = new Date();
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) return r.status ?? 1;
  chmodSync(join(root, 'dist', 'cli', 'main.js'), 0o755);
  await bundle(root);
  // The start time, not the end: a file saved while tsc ran is newer than the stamp, so rebuilt next time.
  closeSync(openSync(join(root, STAMP), 'w'));
  utimesSync(join(root, STAMP), started, started);
  return 0;
}

export const BIN = join('dist', 'bin', 'pillion.js');

// zod exports the messages of every language it speaks (z.locales, about 360 KB of the bundle, a
// third of what every start would read and compile); Pillion speaks English only, the default
// zod sets itself. The bundle gets a locales module with English alone.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: "export { default as en } from './en.js';\n",
      loader: 'js',
    }));
  },
};

async function bundle(root) {
  const esbuild = createRequire(import.meta.url)('esbuild');
  const outdir = join(root, 'dist', 'bin');
  rmSync(outdir, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: { pillion: join(root, 'dist', 'cli', 'main.js') },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    // CommonJS libraries inside an ES module call require() for Node's own modules.
    banner: {
      js: "import { createRequire as __pillionCreateRequire } from 'node:module'; const require = __pillionCreateRequire(import.meta.url);",
    },
    chunkNames: '[name]-[hash]',
    // Files read at run time (pino-pretty, for a person's terminal) stay outside, found in node_modules.
    external: ['pino-pretty'],
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [zodEnglishOnly],
    // Without comments and spaces: every start reads and compiles this text, and V8's parser
    // goes over every character of it (names are kept, so stack traces still name functions).
    // 1-3 MB less resident and a few ms less CPU at start (README, Footprint). The source maps
    // beside it give a trace's places back with `node --enable-source-maps`.
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
  });
  chmodSync(join(root, BIN), 0o755);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await build(fileURLToPath(new URL('..', import.meta.url)));
}
