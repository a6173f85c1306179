// Exec mode (consul-template's and Vault Agent's supervisor): pillion starts the app as its child
// once the files are rendered, passes on the signals it is given (SIGUSR1, SIGUSR2, ...), sends it
// a signal or restarts it after a change, and restarts it with the kubelet's back-off (10 s doubling
// to 5 min, reset after 10 min of running) when it exits by itself.

import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import type { ExecConfig } from './config.js';
import type { Sender } from './notifiers/notifier.js';

const BACKOFF_MIN = 10_000;
const BACKOFF_MAX = 300_000;
const BACKOFF_RESET = 600_000;

export interface ExecOptions {
  clock: Clock;
  logger: Logger;
  env: Readonly<Record<string, string | undefined>>;
  /** Where signals come from (the process; an emitter in tests). */
  signals?: NodeJS.EventEmitter;
}

export class ExecSupervisor implements Sender {
  readonly #cfg: ExecConfig;
  readonly #opts: ExecOptions;
  readonly #signals: NodeJS.EventEmitter;
  readonly #forward = new Map<string, () => void>();
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #restarts = 0;
  #delay = 0;
  #timer: TimerHandle | undefined;
  #stopping = false;
  #started = false;
  #exited: Promise<void> = Promise.resolve();
  #lastExit: string | undefined;

  constructor(cfg: ExecConfig, opts: ExecOptions) {
    this.#cfg = cfg;
    this.#opts = opts;
    this.#signals = opts.signals ?? process;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    this.#started = true;
    for (const sig of this.#cfg.forwardSignals) {
      const fn = () => this.#signal(sig);
      this.#forward.set(sig, fn);
      this.#signals.on(sig, fn);
    }
    this.#spawn();
  }

  /** A change: signal the app, or restart it. */
  async send(): Promise<void> {
    // Not started yet: the app starts with the files as they are now.
    if (this.#stopping || !this.#started) return;
    if (this.#cfg.onChange === 'signal') {
      if (!this.#child?.pid)
        throw new PillionError(
          'PILLION_ERR_SYNC_NOTIFY',
          'exec: the app is not running (it is restarted with back-off)',
        );
      this.#signal(this.#cfg.signal);
      return;
    }
    await this.#terminate();
    if (this.#stopping) return;
    this.#timer?.cancel();
    this.#spawn();
  }

  /** Stops the app (SIGTERM, SIGKILL after killTimeout) and stops passing signals on. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#timer?.cancel();
    for (const [sig, fn] of this.#forward) this.#signals.off(sig, fn);
    this.#forward.clear();
    await this.#terminate();
  }

  status(): { pid: number | null; restarts: number; lastExit: string | null } {
    return { pid: this.#child?.pid ?? null, restarts: this.#restarts, lastExit: this.#lastExit ?? null };
  }

  #signal(sig: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, sig);
    } catch (err) {
      this.#opts.logger.warn(
        { code: 'PILLION_ERR_SYNC_NOTIFY', pid, signal: sig, err: (err as Error).message },
        'exec: cannot signal the app',
      );
    }
  }

  #spawn(): void {
    const [program, ...args] = this.#cfg.command;
    const child = spawn(program!, args, {
      stdio: 'inherit',
      env: this.#opts.env as NodeJS.ProcessEnv,
      ...(this.#cfg.workingDir ? { cwd: this.#cfg.workingDir } : {}),
    });
    this.#child = child;
    this.#startedAt = this.#opts.clock.now();
    this.#exited = new Promise((resolve) => {
      child.once('error', (err) => {
        this.#opts.logger.error(
          { code: 'PILLION_ERR_SYNC_EXEC', err: (err as NodeJS.ErrnoException).code ?? err.message },
          `exec: cannot start ${program}`,
        );
      });
      child.once('close', (code, signal) => {
        this.#lastExit = signal ? `signal ${signal}` : `exit ${code}`;
        if (this.#child === child) this.#child = undefined;
        resolve();
        if (!this.#stopping && !(child as { replaced?: boolean }).replaced) this.#exitedByItself(program!);
      });
    });
    this.#opts.logger.info({ pid: child.pid, command: program }, 'exec: app started');
  }

  #exitedByItself(program: string): void {
    const ran = this.#opts.clock.now() - this.#startedAt;
    this.#delay =
      ran >= BACKOFF_RESET || this.#delay === 0 ? BACKOFF_MIN : Math.min(BACKOFF_MAX, this.#delay * 2);
    this.#restarts++;
    this.#opts.logger.warn(
      { code: 'PILLION_ERR_SYNC_EXEC', exit: this.#lastExit, restartInMs: this.#delay },
      `exec: ${program} exited; restarting after back-off`,
    );
    this.#timer = this.#opts.clock.setTimeout(() => {
      if (!this.#stopping) this.#spawn();
    }, this.#delay);
  }

  async #terminate(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    (child as { replaced?: boolean }).replaced = true;
    child.kill('SIGTERM');
    const kill = this.#opts.clock.setTimeout(() => child.kill('SIGKILL'), this.#cfg.killTimeout);
    await this.#exited;
    kill.cancel();
  }
}
