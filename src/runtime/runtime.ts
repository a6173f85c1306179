// The Pillion process: starts the enabled modules, serves the admin API, reloads config (in place
// where a module can, otherwise by restarting that module alone), and drains and stops everything
// on shutdown. A bad reload never takes the process down: the previous config keeps running and
// the failure is visible on /config and as a metric.

import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { AdminServer } from '../admin/index.js';
import {
  type ConfigIssue,
  type Env,
  effectiveView,
  formatIssue,
  type JsonSchema,
  type LoadResult,
} from '../config/index.js';
import { type Address, formatAddress } from '../lib/address.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { MemoryReturn, type MemoryReturnDeps, processMemoryDeps } from './memory-return.js';
import { PillionError } from '../lib/errors.js';
import { counter, createMetricsRegistry, type Gauge, gauge, type Registry } from '../metrics/index.js';
import { type ConfigExtras, istioResources, type PillionConfig } from './config-schema.js';
import { ConfigWatcher } from './config-watcher.js';
import { HealthSignal } from './health-signal.js';
import type { Module, ModuleContext, ModuleDefinition, ModuleSource } from './module.js';

export interface LoadedConfig {
  config: PillionConfig;
  /** As written, after interpolation: what /config shows, with defaults filled in. */
  raw: Record<string, unknown>;
  text: string;
}

export interface RuntimeOptions {
  initial: LoadedConfig;
  /** The file to reload from; undefined when running on embedded defaults. */
  configFile: string | undefined;
  /** What the command line adds to the config file (Istio resource files), read again on reload. */
  configExtras?: ConfigExtras;
  env: Env;
  logger: Logger;
  /**
   * In start order. A ModuleSource is loaded when its section first appears in the config, so a
   * role that is not configured never loads its code.
   */
  modules: readonly (ModuleDefinition<unknown> | ModuleSource)[];
  /** Reads and validates the config file (on reload). */
  loadConfig(file: string, env: Env, extras?: ConfigExtras): Promise<LoadResult<PillionConfig>>;
  /** The JSON Schema of a config's sections, for /config's view (defaults filled, secrets redacted). */
  jsonSchema(config: PillionConfig): Promise<JsonSchema>;
  clock?: Clock;
  metrics?: Registry;
  /** File watching for reloads; false to rely on SIGHUP and POST /reload only. */
  watch?: false | { debounceMs?: number; pollMs?: number };
  version?: string;
  /** A log level given on the command line; config reloads do not change it. */
  logLevelOverride?: string | undefined;
  /**
   * Whether to give memory back after a burst, once idle (memory-return.ts): on by default with
   * the system clock; a test on fake time passes readings of its own.
   */
  memoryReturn?: boolean | Omit<MemoryReturnDeps, 'onReturn'>;
}

export type ReloadOutcome =
  | { ok: true; trigger: string; changed: string[]; restarted: string[] }
  | { ok: false; trigger: string; code: string; message: string; issues: ConfigIssue[] };

interface ReloadRecord {
  at: string;
  trigger: string;
  ok: boolean;
  code?: string;
  message?: string;
  errors?: string[];
}

interface Running {
  def: ModuleDefinition<unknown>;
  module: Module<unknown>;
  section: unknown;
}

type State = 'new' | 'starting' | 'running' | 'draining' | 'stopped';

export class Runtime {
  #opts: RuntimeOptions;
  #clock: Clock;
  #logger: Logger;
  #metrics: Registry;
  #loaded: LoadedConfig;
  #state: State = 'new';
  #modules = new Map<string, Running>();
  #loadedDefinitions = new Map<string, Promise<ModuleDefinition<unknown>>>();
  #appHealth = new HealthSignal(true);
  #services = new Map<string, unknown>();
  #admin: AdminServer | undefined;
  #watcher: ConfigWatcher | undefined;
  #reloadChain: Promise<unknown> = Promise.resolve();
  #lastReload: ReloadRecord | undefined;
  #shutdown: Promise<void> | undefined;
  #memoryReturn: MemoryReturn | undefined;
  #starting: Promise<void> | undefined;
  /** The admin address actually bound (a failed move leaves the old one). */
  #adminListen: Address | undefined;
  /** Old admin servers still finishing their last requests after a move. */
  #retiring: Promise<void>[] = [];
  #resolveDone!: () => void;
  #reloads;
  #lastReloadOk;
  #lastReloadTime;

  /** Resolves when the runtime has drained and stopped, or given up waiting for a module to stop. */
  readonly done: Promise<void>;
  #cleanStop = true;

  /** After done: false when a module was still stopping at runtime.stopTimeout. */
  get stoppedCleanly(): boolean {
    return this.#cleanStop;
  }

  constructor(opts: RuntimeOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#logger = opts.logger;
    this.#metrics = opts.metrics ?? createMetricsRegistry();
    this.#loaded = opts.initial;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    this.#reloads = counter(this.#metrics, {
      name: 'pillion_config_reloads_total',
      help: 'Config reload attempts, by result.',
      labelNames: ['result'],
    });
    this.#lastReloadOk = gauge(this.#metrics, {
      name: 'pillion_config_last_reload_successful',
      help: '1 when the last config reload succeeded (or none was tried), 0 when it failed and the previous config is still running.',
    });
    this.#lastReloadTime = gauge(this.#metrics, {
      name: 'pillion_config_last_reload_timestamp_seconds',
      help: 'When the last config reload was attempted.',
    });
    this.#lastReloadOk.set(1);
    const ready: Gauge = gauge(this.#metrics, {
      name: 'pillion_ready',
      help: '1 when every module is ready and the app is healthy.',
      collect: (): void => ready.set(this.readiness().ready ? 1 : 0),
    });
    gauge(this.#metrics, {
      name: 'pillion_build_info',
      help: 'Pillion version.',
      labelNames: ['version'],
    }).set({ version: opts.version ?? 'dev' }, 1);
  }

  get config(): PillionConfig {
    return this.#loaded.config;
  }

  get appHealth(): HealthSignal {
    return this.#appHealth;
  }

  get metrics(): Registry {
    return this.#metrics;
  }

  /** The admin server's bound address (useful with port 0). */
  get adminAddress(): { host: string; port: number } | undefined {
    return this.#admin?.address();
  }

  /** Starts the admin server and the enabled modules. A shutdown during start stops what started. */
  start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('runtime already started');
    this.#state = 'starting';
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#admin = this.#createAdmin(this.config);
    await this.#admin.start();
    this.#logger.info({ admin: formatAddress(this.#admin.address()!) }, 'admin server listening');
    this.#adminListen = this.config.admin.listen;
    try {
      for (const entry of this.#opts.modules) {
        if (this.#shutdown) return; // shutdown() drains and stops what has started
        const def = await this.#definition(entry, this.config);
        if (this.#shutdown) return;
        if (!def) continue;
        const section = def.section(this.config);
        if (section !== undefined) await this.#startModule(def, section);
      }
    } catch (err) {
      await Promise.allSettled([...this.#modules.values()].map((r) => r.module.stop()));
      await this.#admin.stop();
      throw err;
    }
    if (this.#shutdown) return;
    this.#state = 'running';
    if (this.#opts.configFile && this.#opts.watch !== false) {
      this.#watcher = new ConfigWatcher(this.#opts.configFile, () => void this.reload('file change'), {
        clock: this.#clock,
        ...(this.#opts.watch ?? {}),
        onError: (err) =>
          this.#logger.warn({ err }, 'cannot watch the config file; reload with SIGHUP or POST /reload'),
      });
      this.#watcher.start(this.#loaded.text);
    }
    this.#startMemoryReturn();
    this.#logger.info(
      { modules: [...this.#modules.keys()], config: this.#opts.configFile ?? '(embedded defaults)' },
      'pillion started',
    );
  }

  #startMemoryReturn(): void {
    const opt = this.#opts.memoryReturn ?? this.#opts.clock === undefined;
    if (opt === false) return;
    const returns = counter(this.#metrics, {
      name: 'pillion_runtime_memory_returns_total',
      help: 'Full collections asked of V8 once idle after a burst, to give the heap it grew back.',
    });
    const returned = counter(this.#metrics, {
      name: 'pillion_runtime_memory_returned_bytes_total',
      help: "Bytes V8's heap shrank by in those collections.",
    });
    this.#memoryReturn = new MemoryReturn({
      ...(opt === true ? processMemoryDeps(this.#clock) : opt),
      onReturn: (before, after) => {
        returns.inc();
        returned.inc(Math.max(0, before - after));
        this.#logger.debug(
          { heapBefore: before, heapAfter: after },
          'idle after a burst: memory given back to the system',
        );
      },
    });
    this.#memoryReturn.start();
  }

  readiness(): { ready: boolean; state: State; checks: { name: string; ready: boolean; reason?: string }[] } {
    const checks = [...this.#modules.entries()].map(([name, r]) => ({ name, ...r.module.readiness() }));
    const ready = this.#state === 'running' && checks.every((c) => c.ready);
    return { ready, state: this.#state, checks };
  }

  /** The effective config with defaults and redacted secrets, and the outcome of the last reload. */
  async configView(): Promise<unknown> {
    const loaded = this.#loaded;
    return {
      source: this.#opts.configFile ?? '(embedded defaults)',
      config: effectiveView(await this.#opts.jsonSchema(loaded.config), loaded.raw),
      lastReload: this.#lastReload ?? null,
    };
  }

  /** The Istio resources read (applied or not, and why) and what each module enforces: GET /policies. */
  policiesView(): unknown {
    const modules: Record<string, unknown> = {};
    for (const [name, r] of this.#modules) if (r.module.policies) modules[name] = r.module.policies();
    return { istio: istioResources.get(this.#loaded.config) ?? [], ...modules };
  }

  /** Every proxy module's upstreams, endpoints, health and counters: GET /clusters. */
  clustersView(): unknown[] {
    const out: unknown[] = [];
    for (const r of this.#modules.values()) if (r.module.clusters) out.push(...r.module.clusters());
    return out;
  }

  /** Re-reads the config file and applies it. Reloads run one at a time, in order. */
  reload(trigger: string): Promise<ReloadOutcome> {
    const next = this.#reloadChain.then(() => this.#reload(trigger));
    this.#reloadChain = next.catch(() => {});
    return next;
  }

  /** Stops being ready, drains every module until the drain deadline, then stops. Idempotent. */
  shutdown(reason: string): Promise<void> {
    this.#shutdown ??= this.#doShutdown(reason);
    return this.#shutdown;
  }

  async #reload(trigger: string): Promise<ReloadOutcome> {
    if (this.#state !== 'running') {
      return {
        ok: false,
        trigger,
        code: 'PILLION_ERR_RUNTIME_SHUTTING_DOWN',
        message: `not reloading: the process is ${this.#state}`,
        issues: [],
      };
    }
    const file = this.#opts.configFile;
    if (!file) {
      this.#logger.info(
        { trigger },
        'reload requested, but there is no config file: running on embedded defaults',
      );
      return this.#recordSuccess(trigger, [], []);
    }
    const loaded = await this.#opts.loadConfig(file, this.#opts.env, this.#opts.configExtras);
    if (loaded.text !== undefined) this.#watcher?.markLoaded(loaded.text);
    if (!loaded.ok) {
      for (const issue of loaded.issues) this.#logger.error({ code: issue.code }, formatIssue(issue));
      return this.#recordFailure(trigger, {
        code: 'PILLION_ERR_RUNTIME_RELOAD_REJECTED',
        message: `${loaded.issues.length} error(s) in ${file}; the previous config keeps running`,
        issues: loaded.issues,
      });
    }
    return this.#apply(trigger, { config: loaded.config, raw: loaded.raw, text: loaded.text });
  }

  async #apply(trigger: string, next: LoadedConfig): Promise<ReloadOutcome> {
    const changed: string[] = [];
    const restarted: string[] = [];
    const failures: string[] = [];
    const prev = this.#loaded.config;

    for (const entry of this.#opts.modules) {
      const running = this.#modules.get(entry.name);
      let def: ModuleDefinition<unknown> | undefined;
      try {
        def = running?.def ?? (await this.#definition(entry, next.config));
      } catch (err) {
        changed.push(entry.name);
        failures.push(`${entry.name}: ${(err as Error).message}`);
        continue;
      }
      if (!def) continue;
      const section = def.section(next.config);
      if (isDeepStrictEqual(running?.section, section)) continue;
      changed.push(def.name);
      try {
        if (running && section === undefined) {
          await running.module.drain(this.#clock.now() + next.config.runtime.drainTimeout);
          await running.module.stop();
          this.#modules.delete(def.name);
          if (def.name === 'app') this.#appHealth.set(true);
        } else if (!running) {
          await this.#startModule(def, section);
        } else if ((await running.module.reload(section)) === 'applied') {
          running.section = section;
        } else {
          // Restart one module at a time: the old instance releases its ports before the new binds.
          await running.module.stop();
          this.#modules.delete(def.name);
          restarted.push(def.name);
          try {
            await this.#startModule(def, section);
          } catch (err) {
            this.#logger.error(
              { err, module: def.name },
              'module failed to start with the new config; restoring the previous one',
            );
            await this.#startModule(def, running.section).catch((restoreErr) =>
              this.#logger.error({ err: restoreErr, module: def.name }, 'module could not be restored'),
            );
            throw err;
          }
        }
      } catch (err) {
        failures.push(`${def.name}: ${(err as Error).message}`);
      }
    }

    if (!isDeepStrictEqual(this.#adminListen, next.config.admin.listen)) {
      changed.push('admin');
      try {
        await this.#rebindAdmin(next.config);
      } catch (err) {
        failures.push(`admin: ${(err as Error).message}`);
      }
    }
    if (prev.runtime.log.level !== next.config.runtime.log.level && !this.#opts.logLevelOverride)
      this.#logger.level = next.config.runtime.log.level;
    if (prev.runtime.log.format !== next.config.runtime.log.format) {
      // The log stream is chosen once, at start: switching mid-run would split one log into two formats.
      this.#logger.warn(
        { format: next.config.runtime.log.format },
        'runtime.log.format takes effect at the next start',
      );
    }

    this.#loaded = next;
    if (failures.length > 0) {
      return this.#recordFailure(trigger, {
        code: 'PILLION_ERR_RUNTIME_MODULE_START',
        message: `reload applied in part; these kept their previous config: ${failures.join('; ')}`,
        issues: [],
      });
    }
    return this.#recordSuccess(trigger, changed, restarted);
  }

  /** A module's definition, loading its code the first time its section is in the config. */
  async #definition(
    entry: ModuleDefinition<unknown> | ModuleSource,
    config: PillionConfig,
  ): Promise<ModuleDefinition<unknown> | undefined> {
    if (!('load' in entry)) return entry;
    let def = this.#loadedDefinitions.get(entry.name);
    if (!def) {
      if ((config as unknown as Record<string, unknown>)[entry.name] === undefined) return undefined;
      def = entry.load();
      this.#loadedDefinitions.set(entry.name, def);
      def.catch(() => this.#loadedDefinitions.delete(entry.name));
    }
    return def;
  }

  async #startModule(def: ModuleDefinition<unknown>, section: unknown): Promise<void> {
    const ctx: ModuleContext = {
      logger: this.#logger.child({ module: def.name }),
      metrics: this.#metrics,
      clock: this.#clock,
      appHealth: this.#appHealth,
      env: this.#opts.env,
      services: this.#services,
    };
    const module = def.create(section, ctx);
    try {
      await module.start();
    } catch (err) {
      await module.stop().catch(() => {});
      throw new PillionError(
        'PILLION_ERR_RUNTIME_MODULE_START',
        `module ${def.name} failed to start: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.#modules.set(def.name, { def, module, section });
  }

  async #rebindAdmin(config: PillionConfig): Promise<void> {
    const old = this.#admin!;
    const oldListen = this.#adminListen!;
    let next = this.#createAdmin(config);
    try {
      await next.start(); // on failure the old server keeps serving
    } catch (err) {
      // Same port, other host (127.0.0.1 -> localhost): the old server holds the port; release it first.
      const samePort = config.admin.listen.port !== 0 && config.admin.listen.port === old.address()?.port;
      if (!samePort) throw err;
      await old.stop();
      try {
        await next.start();
      } catch (retryErr) {
        next = this.#createAdmin({ ...config, admin: { ...config.admin, listen: oldListen } });
        await next.start();
        this.#admin = next;
        throw retryErr;
      }
    }
    this.#admin = next;
    this.#adminListen = config.admin.listen;
    // Not awaited: the old server may be carrying the very POST /reload that asked for this move;
    // it answers, then closes.
    this.#retiring.push(old.stop());
    this.#logger.info({ admin: formatAddress(next.address()!) }, 'admin server moved');
  }

  #createAdmin(config: PillionConfig): AdminServer {
    return new AdminServer(
      config.admin.listen,
      {
        readiness: () => this.readiness(),
        metrics: (accept) => this.#metrics.render(accept),
        config: () => this.configView(),
        status: (name) => this.#modules.get(name)?.module.status?.(),
        policies: () => this.policiesView(),
        clusters: () => this.clustersView(),
        reload: () => this.reload('POST /reload'),
        quit: () => void this.shutdown('POST /quitquitquit'),
      },
      { allowRemote: config.admin.allowRemote, env: this.#opts.env },
    );
  }

  #recordSuccess(trigger: string, changed: string[], restarted: string[]): ReloadOutcome {
    this.#reloads.inc({ result: 'success' });
    this.#lastReloadOk.set(1);
    this.#lastReloadTime.set(this.#clock.now() / 1000);
    this.#lastReload = { at: new Date(this.#clock.now()).toISOString(), trigger, ok: true };
    this.#logger.info(
      { trigger, changed, restarted },
      changed.length ? 'config reloaded' : 'config reloaded; nothing changed',
    );
    return { ok: true, trigger, changed, restarted };
  }

  #recordFailure(
    trigger: string,
    f: { code: string; message: string; issues: ConfigIssue[] },
  ): ReloadOutcome {
    this.#reloads.inc({ result: 'failure' });
    this.#lastReloadOk.set(0);
    this.#lastReloadTime.set(this.#clock.now() / 1000);
    this.#lastReload = {
      at: new Date(this.#clock.now()).toISOString(),
      trigger,
      ok: false,
      code: f.code,
      message: f.message,
      errors: f.issues.map(formatIssue),
    };
    this.#logger.error({ trigger, code: f.code }, f.message);
    return { ok: false, trigger, ...f };
  }

  async #doShutdown(reason: string): Promise<void> {
    // The clock's timers never hold the process; during shutdown something must, or a module stuck
    // past the admin server's close would let the event loop run dry before the deadline is told.
    const hold = setInterval(() => {}, 60_000);
    try {
      await this.#shutdownSteps(reason);
    } finally {
      clearInterval(hold);
    }
  }

  async #shutdownSteps(reason: string): Promise<void> {
    this.#state = 'draining';
    this.#watcher?.stop();
    this.#memoryReturn?.stop();
    const drainTimeout = this.config.runtime.drainTimeout;
    const deadline = this.#clock.now() + drainTimeout;
    // A start or reload in progress finishes first (so what it starts is also stopped), within the deadline.
    let waitTimer: { cancel(): void } | undefined;
    await Promise.race([
      Promise.allSettled([this.#starting, this.#reloadChain]),
      new Promise<void>((resolve) => {
        waitTimer = this.#clock.setTimeout(resolve, drainTimeout);
      }),
    ]);
    waitTimer?.cancel();
    const wasRunning = this.#modules.size > 0;
    this.#logger.info({ reason, drainTimeout }, 'shutting down: draining');

    if (wasRunning) {
      const pending = new Set(this.#modules.keys());
      const drains = Promise.all(
        [...this.#modules.entries()].map(async ([name, r]) => {
          try {
            await r.module.drain(deadline);
          } catch (err) {
            this.#logger.warn({ err, module: name }, 'drain failed');
          } finally {
            pending.delete(name);
          }
        }),
      );
      let timer: { cancel(): void } | undefined;
      const expired = new Promise<'expired'>((resolve) => {
        timer = this.#clock.setTimeout(() => resolve('expired'), Math.max(0, deadline - this.#clock.now()));
      });
      const outcome = await Promise.race([drains.then(() => 'drained' as const), expired]);
      timer?.cancel();
      if (outcome === 'expired') {
        this.#logger.warn(
          { code: 'PILLION_ERR_RUNTIME_DRAIN_TIMEOUT', modules: [...pending] },
          'drain deadline passed; stopping anyway',
        );
      }
    }
    // Stopping is bounded too: a module stuck in a write to a hung file system must not keep the
    // process up past what the orchestrator allows (it would SIGKILL it anyway, with less said).
    const stopping = new Set<string>();
    const stops = [...this.#modules.entries()].map(async ([name, r]) => {
      stopping.add(name);
      try {
        await r.module.stop();
      } catch (err) {
        this.#logger.warn({ err, module: name }, 'stop failed');
      } finally {
        stopping.delete(name);
      }
    });
    const adminStop = (async () => {
      stopping.add('admin');
      await Promise.allSettled([this.#admin?.stop(), ...this.#retiring]);
      stopping.delete('admin');
    })();
    const stopTimeout = this.config.runtime.stopTimeout;
    let stopTimer: { cancel(): void } | undefined;
    const stopped = await Promise.race([
      Promise.all([...stops, adminStop]).then(() => true),
      new Promise<false>((resolve) => {
        stopTimer = this.#clock.setTimeout(() => resolve(false), stopTimeout);
      }),
    ]);
    stopTimer?.cancel();
    this.#modules.clear();
    this.#state = 'stopped';
    if (!stopped) {
      this.#cleanStop = false;
      this.#logger.error(
        { code: 'PILLION_ERR_RUNTIME_STOP_TIMEOUT', modules: [...stopping], stopTimeout },
        'still stopping after runtime.stopTimeout; exiting anyway',
      );
    }
    this.#logger.info({ reason }, 'pillion stopped');
    this.#resolveDone();
  }
}
