// The `logs:` role as a runtime module. A reload builds the new pipeline, drains the old one into
// its sinks (so nothing held in memory is dropped), and starts the new one from the checkpoints the
// old one left; if the new one cannot start, the old config is started again.

import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { defaultStateDir } from '../lib/state-dir.js';
import type { Module, ModuleContext, ModuleDefinition, Readiness, ReloadResult } from '../runtime/module.js';
import type { LogsConfig } from './config.js';
import { Pipeline, type PipelineOptions } from './pipeline.js';

/** How long a reload waits for the old pipeline to hand over what it holds. */
const RELOAD_DRAIN_MS = 10_000;

export interface LogsModuleOptions {
  random?: () => number;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
}

export class LogsModule implements Module<LogsConfig> {
  #cfg: LogsConfig;
  #ctx: ModuleContext;
  #opts: LogsModuleOptions;
  #log: Logger;
  #pipeline: Pipeline | undefined;

  constructor(cfg: LogsConfig, ctx: ModuleContext, opts: LogsModuleOptions = {}) {
    this.#cfg = cfg;
    this.#ctx = ctx;
    this.#opts = opts;
    // The runtime's logger already carries `module: logs`; binding it again wrote the key twice.
    this.#log = ctx.logger;
  }

  /** The data directory in use: `dataDir`, else `<state dir>/logs`. */
  get dataDir(): string {
    return this.#cfg.dataDir ?? join(defaultStateDir(this.#env()), 'logs');
  }

  async start(): Promise<void> {
    this.#pipeline = await this.#startPipeline(this.#cfg);
  }

  async reload(section: LogsConfig): Promise<ReloadResult> {
    if (isDeepStrictEqual(section, this.#cfg)) return 'applied';
    const old = this.#pipeline;
    if (old) {
      await old.drain(this.#ctx.clock.now() + RELOAD_DRAIN_MS);
      await old.stop();
      this.#pipeline = undefined;
    }
    try {
      this.#pipeline = await this.#startPipeline(section);
      this.#cfg = section;
      return 'applied';
    } catch (err) {
      this.#log.error({ err }, 'the new logs config could not start; restarting the previous one');
      this.#pipeline = await this.#startPipeline(this.#cfg);
      throw err;
    }
  }

  async drain(deadline: number): Promise<void> {
    await this.#pipeline?.drain(deadline);
  }

  async stop(): Promise<void> {
    await this.#pipeline?.stop();
    this.#pipeline = undefined;
  }

  readiness(): Readiness {
    return this.#pipeline
      ? this.#pipeline.readiness()
      : { ready: false, reason: 'logs pipeline not running' };
  }

  #env(): Readonly<Record<string, string | undefined>> {
    return this.#ctx.env;
  }

  async #startPipeline(cfg: LogsConfig): Promise<Pipeline> {
    const opts: PipelineOptions = {
      dataDir: cfg.dataDir ?? join(defaultStateDir(this.#env()), 'logs'),
      logger: this.#log,
      metrics: this.#ctx.metrics,
      timing: { clock: this.#ctx.clock, random: this.#opts.random ?? Math.random },
      env: this.#env(),
      ...(this.#opts.stdin ? { stdin: this.#opts.stdin } : {}),
      ...(this.#opts.stdout ? { stdout: this.#opts.stdout } : {}),
    };
    const p = new Pipeline(cfg, opts);
    await p.start();
    return p;
  }
}

export function logsModule(opts: LogsModuleOptions = {}): ModuleDefinition<LogsConfig> {
  return {
    name: 'logs',
    section: (config) => config.logs,
    create: (section, ctx) => new LogsModule(section, ctx, opts),
  };
}
