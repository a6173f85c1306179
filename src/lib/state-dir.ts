// Where Pillion keeps state that outlives a process: pod runs and logs, checkpoints and buffers.

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { PillionError } from './errors.js';

/** Where the state directory in use came from, so a message can say how to choose another. */
export type StateDirSource = 'flag' | 'env' | 'default';

export interface StateDirChoice {
  dir: string;
  source: StateDirSource;
}

/**
 * $PILLION_STATE_DIR, else $XDG_STATE_HOME/pillion, else ~/.local/state/pillion. An empty
 * PILLION_STATE_DIR is an error: it would otherwise mean the current directory, or quietly the
 * default, and neither is what someone who set it meant.
 */
export function defaultStateDir(env: Readonly<Record<string, string | undefined>>): string {
  return chooseStateDir(undefined, env).dir;
}

/** The state directory for a command: its --state-dir, else the default; always absolute. */
export function chooseStateDir(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): StateDirChoice {
  if (flag !== undefined) {
    if (flag.trim() === '') throw empty('--state-dir ""', 'leave --state-dir out');
    return { dir: resolve(flag), source: 'flag' };
  }
  const fromEnv = env.PILLION_STATE_DIR;
  if (fromEnv !== undefined) {
    if (fromEnv.trim() === '') throw empty('PILLION_STATE_DIR is set but empty', 'unset PILLION_STATE_DIR');
    return { dir: resolve(fromEnv), source: 'env' };
  }
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return { dir: resolve(base, 'pillion'), source: 'default' };
}

function empty(what: string, instead: string): PillionError {
  return new PillionError(
    'PILLION_ERR_STATE_DIR_EMPTY',
    `${what}: that names no directory; ${instead} for the default ($XDG_STATE_HOME/pillion, else ~/.local/state/pillion), or name a directory`,
  );
}
