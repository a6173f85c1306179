// Where Pillion keeps state that outlives a process: pod runs and logs, checkpoints and buffers.

import { homedir } from 'node:os';
import { join } from 'node:path';

/** $PILLION_STATE_DIR, else $XDG_STATE_HOME/pillion, else ~/.local/state/pillion. */
export function defaultStateDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env.PILLION_STATE_DIR) return env.PILLION_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'pillion');
}
