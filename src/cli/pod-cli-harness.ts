// What the CLI pod tests share: a temp root with a state directory, the real CLI run as a process
// of its own (as a person's would be), and manifests written under the root.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const cli = new URL('../../dist/cli/main.js', import.meta.url).pathname;

export interface PodCli {
  readonly root: string;
  readonly state: string;
  /** Runs `pillion ARGS --state-dir STATE` to completion. */
  pillion(...args: string[]): SpawnSyncReturns<string>;
  /** Writes a manifest under the root ($DIR in it stands for the root) and returns its path. */
  manifest(name: string, body: string): string;
  /** Removes the root. */
  remove(): void;
}

export function podCli(): PodCli {
  const root = mkdtempSync(join(tmpdir(), 'pillion-podcli-'));
  const state = join(root, 'state');
  return {
    root,
    state,
    pillion: (...args) =>
      spawnSync(process.execPath, [cli, ...args, '--state-dir', state], {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
      }),
    manifest(name, body) {
      const p = join(root, `${name}.yaml`);
      writeFileSync(p, body.replaceAll('$DIR', root));
      return p;
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
