// The `sync:` role as a module: runs the engine (a new one on reload, the files on disk carried
// over by their content), and exec mode's supervisor, which outlives a reload.

import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { PillionError } from '../lib/errors.js';
import type { Module, ModuleContext, Readiness, ReloadResult } from '../runtime/module.js';
import type { SyncConfig } from './config.js';
import { SyncEngine } from './engine.js';
import { ExecSupervisor } from './exec.js';
import { compileSchemaChecks } from './schema-check.js';

export interface SyncModuleOptions {
  random?: () => number;
  /** Where exec mode's forwarded signals come from (tests). */
  signals?: NodeJS.EventEmitter;
}

export class SyncModule implements Module<SyncConfig> {
  #cfg: SyncConfig;
  readonly #ctx: ModuleContext;
  readonly #opts: SyncModuleOptions;
  #engine: SyncEngine | undefined;
  #exec: ExecSupervisor | undefined;
  #execStarted = false;
  readonly #salt = randomBytes(16);
  #timer: { cancel(): void } | undefined;

  constructor(cfg: SyncConfig, ctx: ModuleContext, opts: SyncModuleOptions = {}) {
    this.#cfg = cfg;
    this.#ctx = ctx;
    this.#opts = opts;
  }

  async start(): Promise<void> {
    if (this.#cfg.exec)
      this.#exec = new ExecSupervisor(this.#cfg.exec, {
        clock: this.#ctx.clock,
        logger: this.#ctx.logger,
        env: this.#ctx.env,
        ...(this.#opts.signals ? { signals: this.#opts.signals } : {}),
      });
    const errors = await this.#startEngine(this.#cfg);
    if (this.#cfg.once) {
      this.#engine!.stop();
      if (errors.length > 0)
        throw new PillionError(
          'PILLION_ERR_SYNC_ONCE',
          `sync once: ${errors.length} problem(s): ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`,
        );
      this.#ctx.logger.info(
        { destinations: Object.keys(this.#cfg.destinations) },
        'sync once: every destination rendered',
      );
    }
    this.#maybeStartExec();
  }

  async reload(section: SyncConfig): Promise<ReloadResult> {
    if (!isDeepStrictEqual(section.exec, this.#cfg.exec) || section.once !== this.#cfg.once)
      return 'restart-needed';
    this.#engine?.stop();
    this.#cfg = section;
    await this.#startEngine(section);
    this.#maybeStartExec();
    return 'applied';
  }

  async drain(): Promise<void> {}

  async stop(): Promise<void> {
    this.#timer?.cancel();
    this.#engine?.stop();
    await this.#exec?.stop();
  }

  readiness(): Readiness {
    return this.#engine?.readiness() ?? { ready: false, reason: 'sync starting' };
  }

  status(): unknown {
    const s = (this.#engine?.status() ?? {}) as Record<string, unknown>;
    return { once: this.#cfg.once, ...s, exec: this.#exec ? this.#exec.status() : null };
  }

  /** The engine in use (tests). */
  get engine(): SyncEngine | undefined {
    return this.#engine;
  }

  async #startEngine(cfg: SyncConfig) {
    const carried = this.#engine?.carry();
    const schemaChecks = await compileSchemaChecks(cfg.destinations);
    this.#engine = new SyncEngine(cfg, {
      schemaChecks,
      salt: this.#salt,
      ...(carried ? { carried } : {}),
      clock: this.#ctx.clock,
      random: this.#opts.random ?? Math.random,
      logger: this.#ctx.logger,
      metrics: this.#ctx.metrics,
      env: this.#ctx.env,
      appHealth: this.#ctx.appHealth,
      exec: this.#exec,
      once: cfg.once,
    });
    return this.#engine.start();
  }

  /** Exec mode starts the app once every destination has been rendered (as consul-template does). */
  #maybeStartExec(): void {
    if (!this.#exec || this.#execStarted) return;
    if (this.#engine?.readiness().ready || this.#engine?.allRendered()) {
      this.#execStarted = true;
      this.#exec.start();
      return;
    }
    this.#timer = this.#ctx.clock.setTimeout(() => this.#maybeStartExec(), 250);
  }
}
