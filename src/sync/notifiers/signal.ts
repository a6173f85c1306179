// The signal notifier: a signal to the app's process, found by a pid file (read at each
// notification, as the app may have restarted) or by name (every process whose /proc comm, or
// whose command line's program or script, is that name; pillion itself is never signalled).

import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { PillionError } from '../../lib/errors.js';
import type { NotifierConfig, SignalName } from '../config.js';
import type { Sender } from './notifier.js';

type SignalConfig = Extract<NotifierConfig, { type: 'signal' }>;

export class SignalSender implements Sender {
  readonly #cfg: SignalConfig;

  constructor(cfg: SignalConfig) {
    this.#cfg = cfg;
  }

  async send(): Promise<void> {
    const pids =
      this.#cfg.pidFile !== undefined ? [pidFromFile(this.#cfg.pidFile)] : pidsByName(this.#cfg.process!);
    if (pids.length === 0)
      throw new PillionError(
        'PILLION_ERR_SYNC_NOTIFY',
        `no process named "${this.#cfg.process}" to send ${this.#cfg.signal}`,
      );
    for (const pid of pids) kill(pid, this.#cfg.signal);
  }
}

export function kill(pid: number, signal: SignalName): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    throw new PillionError(
      'PILLION_ERR_SYNC_NOTIFY',
      `cannot send ${signal} to pid ${pid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function pidFromFile(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new PillionError(
      'PILLION_ERR_SYNC_NOTIFY',
      `cannot read pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0)
    throw new PillionError('PILLION_ERR_SYNC_NOTIFY', `pid file ${file} does not hold a pid`);
  return pid;
}

/** Every process (not pillion itself) whose comm, program or script is `name`. */
export function pidsByName(name: string, procDir = '/proc'): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync(procDir);
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const comm = readFileSync(`${procDir}/${e}/comm`, 'utf8').trim();
      const argv = readFileSync(`${procDir}/${e}/cmdline`, 'utf8').split('\0');
      const program = basename(argv[0] ?? '');
      // An interpreter's script: `node app.js`, `python3 server.py` are found by `app.js`, `server.py`.
      const script = argv.slice(1).find((a) => a !== '' && !a.startsWith('-'));
      if (comm === name || program === name || (script !== undefined && basename(script) === name))
        out.push(pid);
    } catch {
      // Exited while we looked.
    }
  }
  return out;
}
