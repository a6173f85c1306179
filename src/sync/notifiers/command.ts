// The command notifier: runs a program (no shell) with a timeout; exit 0 is success.

import { execFile } from 'node:child_process';
import { PillionError } from '../../lib/errors.js';
import type { NotifierConfig } from '../config.js';
import type { Sender } from './notifier.js';

type CommandConfig = Extract<NotifierConfig, { type: 'command' }>;

export class CommandSender implements Sender {
  readonly #cfg: CommandConfig;

  constructor(cfg: CommandConfig) {
    this.#cfg = cfg;
  }

  send(): Promise<void> {
    const [program, ...args] = this.#cfg.command;
    return new Promise((resolve, reject) => {
      execFile(program!, args, { timeout: this.#cfg.timeout, maxBuffer: 64 * 1024 }, (err) => {
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const why = e.killed
          ? `did not finish within ${this.#cfg.timeout} ms`
          : typeof e.code === 'number'
            ? `exited with status ${e.code}`
            : `could not run (${e.code ?? e.message})`;
        reject(new PillionError('PILLION_ERR_SYNC_NOTIFY', `command ${program} ${why}`));
      });
    });
  }
}
