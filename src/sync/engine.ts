// The sync engine: sources yield versions of values; a change of a key re-renders only the
// destinations that read it (after their `wait`), a rendered file is written only when its content
// differs, the app is told, and, with `rollback`, a change after which the app turns unhealthy is
// put back and held as failed until its source changes. A source that fails keeps the last files.

import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { Liquid } from 'liquidjs';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import { RateLimitedLog } from '../lib/rate-limited-log.js';
import { counter, gauge, type Registry } from '../metrics/index.js';
import type { HealthSignal } from '../runtime/health-signal.js';
import type { DestinationConfig, SourceConfig, SyncConfig } from './config.js';
import { compileContent, type Content, type SourceValues } from './content.js';
import type { ExecSupervisor } from './exec.js';
import { Notifier } from './notifiers/notifier.js';
import { createSender } from './notifiers/index.js';
import { canGoStale, createSource, isSingle, type Source, type SourceHost } from './sources/index.js';
import { hasSchema, type SchemaCheck } from './schema-check.js';
import { createLiquid, EVERY_KEY } from './template.js';
import {
  check,
  read,
  type RenderedFile,
  restore,
  type Snapshot,
  type Target,
  unchanged,
  write,
} from './writer.js';

export interface EngineOptions {
  clock: Clock;
  random: () => number;
  logger: Logger;
  metrics: Registry;
  env: Readonly<Record<string, string | undefined>>;
  /** The app's health; rollback watches it. */
  appHealth?: HealthSignal | undefined;
  /** Exec mode's supervisor, owned by the module (it outlives an engine replaced by a reload). */
  exec?: ExecSupervisor | undefined;
  /** Render once and tell no one (`pillion sync --once`, `sync.once`). */
  once?: boolean;
  /** Makes a source from its config; the built-in kinds when omitted (an embedder's own kinds, tests). */
  createSource?: (name: string, cfg: SourceConfig, host: SourceHost) => Source;
  /** Salt of the versions shown in /sync; the module keeps one across reloads so versions compare. */
  salt?: Buffer;
  /** What the engine this one replaces knew of each destination (a reload keeps failed versions held). */
  carried?: ReadonlyMap<string, CarriedState>;
  /** The compiled JSON Schema checks of the destinations that have one (compileSchemaChecks). */
  schemaChecks?: ReadonlyMap<string, SchemaCheck | PillionError>;
}

/** A destination's history, handed from an engine to the one that replaces it on reload. */
export interface CarriedState {
  path: string;
  current: VersionRecord | undefined;
  previous: VersionRecord | undefined;
  failed:
    (VersionRecord & { reason: string; sourceVersions: Record<string, string | undefined> }) | undefined;
}

interface ErrorRecord {
  code: string;
  message: string;
  at: string;
}

interface SourceState {
  readonly name: string;
  readonly cfg: SourceConfig;
  readonly single: boolean;
  values: Map<string, unknown>;
  object: Record<string, unknown> | undefined;
  version: string | undefined;
  state: 'pending' | 'ok' | 'failing';
  stale: boolean;
  lastContact: number | undefined;
  lastChange: number | undefined;
  lastError: ErrorRecord | undefined;
  staleTimer: TimerHandle | undefined;
  firstOutcome: Promise<void>;
  settleFirst: () => void;
  source: Source | undefined;
}

interface VersionRecord {
  version: string;
  at: string;
}

interface Window {
  snapshot: Snapshot;
  snapshotVersion: VersionRecord | undefined;
  sourceVersions: Record<string, string | undefined>;
  timer: TimerHandle;
  unsubscribe: () => void;
}

interface DestState {
  readonly name: string;
  readonly cfg: DestinationConfig;
  readonly target: Target;
  readonly parts: {
    path: string;
    content: Content;
    mode: number | undefined;
    uid?: number | undefined;
    gid?: number | undefined;
  }[];
  readonly deps: Set<string>;
  secret: boolean;
  readonly wait: { min: number; max: number };
  readonly notifiers: readonly Notifier[];
  readonly useExec: boolean;
  readonly schemaCheck: SchemaCheck | undefined;
  compileError: PillionError | undefined;
  burstStart: number | undefined;
  timer: TimerHandle | undefined;
  running: Promise<void> | undefined;
  again: boolean;
  rendered: boolean;
  renders: number;
  current: VersionRecord | undefined;
  previous: VersionRecord | undefined;
  failed:
    (VersionRecord & { reason: string; sourceVersions: Record<string, string | undefined> }) | undefined;
  lastError: ErrorRecord | undefined;
  window: Window | undefined;
}

/** Metric families of the role, got or created on the shared registry. */
function syncMetrics(r: Registry) {
  return {
    updates: counter(r, {
      name: 'pillion_sync_source_updates_total',
      help: 'New values a sync source yielded (a change of at least one key).',
      labelNames: ['source'],
    }),
    sourceErrors: counter(r, {
      name: 'pillion_sync_source_errors_total',
      help: 'Failed reads of a sync source, by error code; the last good files stay.',
      labelNames: ['source', 'code'],
    }),
    stale: gauge(r, {
      name: 'pillion_sync_source_stale',
      help: '1 while a sync source has not been reached for its staleAfter.',
      labelNames: ['source'],
    }),
    renders: counter(r, {
      name: 'pillion_sync_renders_total',
      help: 'Renders of a destination by result: written, unchanged (equal content, no write), failed (render or write error; old file kept), refused (the check refused it), held (a version rolled back before, not applied again).',
      labelNames: ['destination', 'result'],
    }),
    notifications: counter(r, {
      name: 'pillion_sync_notifications_total',
      help: 'Notifications of the app, by notifier and result.',
      labelNames: ['notifier', 'result'],
    }),
    rollbacks: counter(r, {
      name: 'pillion_sync_rollbacks_total',
      help: 'Changes put back because the app turned unhealthy within rollback.window.',
      labelNames: ['destination'],
    }),
    lastWrite: gauge(r, {
      name: 'pillion_sync_last_write_timestamp_seconds',
      help: 'When a destination was last written.',
      labelNames: ['destination'],
    }),
  };
}

export class SyncEngine {
  readonly #cfg: SyncConfig;
  readonly #opts: EngineOptions;
  readonly #log: RateLimitedLog;
  readonly #m: ReturnType<typeof syncMetrics>;
  readonly #sources = new Map<string, SourceState>();
  readonly #dests = new Map<string, DestState>();
  readonly #notifiers = new Map<string, Notifier>();
  /** source -> key -> destinations reading it (`*`: every key). */
  readonly #index = new Map<string, Map<string, Set<DestState>>>();
  /** Versions shown in /sync are hashes salted per process, so a secret's hash cannot be looked up. */
  readonly #salt: Buffer;
  #liquid: Liquid | undefined;
  #stopped = false;
  /** Every source has answered once and the first renders have begun. */
  #settled = false;

  constructor(cfg: SyncConfig, opts: EngineOptions) {
    this.#cfg = cfg;
    this.#opts = opts;
    this.#log = new RateLimitedLog(opts.logger, opts.clock);
    this.#m = syncMetrics(opts.metrics);
    this.#salt = opts.salt ?? randomBytes(16);
    for (const [name, sc] of Object.entries(cfg.sources)) {
      let settleFirst!: () => void;
      const firstOutcome = new Promise<void>((r) => (settleFirst = r));
      this.#sources.set(name, {
        name,
        cfg: sc,
        single: isSingle(sc),
        values: new Map(),
        object: undefined,
        version: undefined,
        state: 'pending',
        stale: false,
        lastContact: undefined,
        lastChange: undefined,
        lastError: undefined,
        staleTimer: undefined,
        firstOutcome,
        settleFirst,
        source: undefined,
      });
      this.#m.stale.set({ source: name }, 0);
    }
    if (!opts.once)
      for (const [name, nc] of Object.entries(cfg.notify))
        this.#notifiers.set(
          name,
          new Notifier(name, createSender(name, nc, opts.env), {
            clock: opts.clock,
            random: opts.random,
            debounce: nc.debounce,
            splay: nc.splay,
          }),
        );
    this.#compile();
  }

  #compile(): void {
    this.#liquid = createLiquid(this.#opts.env);
    const shapes = new Map([...this.#sources].map(([n, s]) => [n, { single: s.single }]));
    for (const [name, d] of Object.entries(this.#cfg.destinations)) {
      const wait = d.wait ?? this.#cfg.wait;
      const names = d.notify ?? [...Object.keys(this.#cfg.notify), ...(this.#cfg.exec ? ['exec'] : [])];
      const schemaCheck = hasSchema(d)
        ? (this.#opts.schemaChecks?.get(name) ??
          new PillionError('PILLION_ERR_SYNC_CHECK', `destination ${name}: its JSON Schema was not compiled`))
        : undefined;
      const state: DestState = {
        name,
        cfg: d,
        target: { where: resolve(d.path ?? d.directory!), set: d.directory !== undefined },
        parts: [],
        deps: new Set(),
        secret: d.secret ?? false,
        wait: { min: wait.min, max: wait.max ?? wait.min * 4 },
        notifiers: names.filter((n) => n !== 'exec').flatMap((n) => this.#notifiers.get(n) ?? []),
        useExec: names.includes('exec'),
        schemaCheck: typeof schemaCheck === 'function' ? schemaCheck : undefined,
        compileError: schemaCheck instanceof PillionError ? schemaCheck : undefined,
        burstStart: undefined,
        timer: undefined,
        running: undefined,
        again: false,
        rendered: false,
        renders: 0,
        current: undefined,
        previous: undefined,
        failed: undefined,
        lastError: undefined,
        window: undefined,
      };
      const carried = this.#opts.carried?.get(name);
      if (carried && carried.path === state.target.where) {
        state.current = carried.current;
        state.previous = carried.previous;
        state.failed = carried.failed;
      }
      const files = d.directory !== undefined ? Object.entries(d.files ?? {}) : [['', d] as const];
      try {
        for (const [rel, f] of files) {
          const content = compileContent(
            f,
            `destination ${name}${rel ? ` file ${rel}` : ''}`,
            this.#liquid,
            shapes,
          );
          state.parts.push({
            path: rel,
            content,
            mode: f.mode ?? d.mode,
            uid: f.uid ?? d.uid,
            gid: f.gid ?? d.gid,
          });
          for (const dep of content.deps) {
            state.deps.add(dep.source);
            let byKey = this.#index.get(dep.source);
            if (!byKey) this.#index.set(dep.source, (byKey = new Map()));
            let set = byKey.get(dep.key);
            if (!set) byKey.set(dep.key, (set = new Set()));
            set.add(state);
          }
        }
        // A file made from a vault source is a secret unless it says otherwise.
        if (d.secret === undefined)
          state.secret = [...state.deps].some((n) => this.#cfg.sources[n]?.type === 'vault');
      } catch (err) {
        state.compileError = err as PillionError;
        state.lastError = this.#record(err);
      }
      if (state.compileError) state.lastError = this.#record(state.compileError);
      this.#dests.set(name, state);
    }
  }

  /**
   * Starts every source, waits for each one's first answer (a value or a failure), and renders
   * every destination. Resolves with the errors of what could not be read or rendered.
   */
  async start(): Promise<PillionError[]> {
    for (const s of this.#sources.values()) {
      s.source = (this.#opts.createSource ?? createSource)(s.name, s.cfg, this.#host(s));
      this.#armStale(s);
      s.source.start();
    }
    await Promise.all([...this.#sources.values()].map((s) => s.firstOutcome));
    if (this.#stopped) return [];
    this.#settled = true;
    await Promise.all([...this.#dests.values()].map((d) => this.#render(d)));
    const errors: PillionError[] = [];
    for (const s of this.#sources.values())
      if (s.state === 'failing' && s.lastError)
        errors.push(new PillionError(s.lastError.code as never, s.lastError.message));
    for (const d of this.#dests.values())
      if (!d.rendered && d.lastError)
        errors.push(new PillionError(d.lastError.code as never, d.lastError.message));
    return errors;
  }

  /** Stops the sources and timers (files stay as they are). */
  stop(): void {
    this.#stopped = true;
    for (const s of this.#sources.values()) {
      s.source?.stop();
      s.staleTimer?.cancel();
      s.settleFirst();
    }
    for (const d of this.#dests.values()) {
      d.timer?.cancel();
      this.#endWindow(d);
    }
    for (const n of this.#notifiers.values()) n.close();
  }

  /** Waits for renders in progress (tests, once mode). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.#dests.values()].flatMap((d) => d.running ?? []);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  /** Whether every destination has been rendered at least once. */
  allRendered(): boolean {
    return [...this.#dests.values()].every((d) => d.rendered);
  }

  readiness(): { ready: boolean; reason?: string } {
    const stale = [...this.#sources.values()].filter((s) => s.stale).map((s) => s.name);
    if (stale.length) return { ready: false, reason: `sync source stale: ${stale.join(', ')}` };
    const missing = [...this.#dests.values()].filter((d) => !d.rendered).map((d) => d.name);
    if (missing.length)
      return { ready: false, reason: `sync destination not rendered yet: ${missing.join(', ')}` };
    const failing = [...this.#sources.values()].filter((s) => s.state === 'failing').map((s) => s.name);
    return failing.length
      ? { ready: true, reason: `sync source failing (last files kept): ${failing.join(', ')}` }
      : { ready: true };
  }

  /** What GET /sync shows: states, versions and errors; never a value. */
  status(): unknown {
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      sources: Object.fromEntries(
        [...this.#sources.values()].map((s) => [
          s.name,
          {
            type: s.cfg.type,
            state: s.state,
            stale: s.stale,
            version: s.version ?? null,
            keys: s.single ? undefined : s.values.size,
            lastContact: iso(s.lastContact),
            lastChange: iso(s.lastChange),
            lastError: s.lastError ?? null,
          },
        ]),
      ),
      destinations: Object.fromEntries(
        [...this.#dests.values()].map((d) => [
          d.name,
          {
            path: d.target.where,
            kind: d.target.set ? 'directory' : 'file',
            secret: d.secret,
            rendered: d.rendered,
            renders: d.renders,
            current: d.current ?? null,
            previous: d.previous ?? null,
            failed: d.failed ? { version: d.failed.version, at: d.failed.at, reason: d.failed.reason } : null,
            watching: d.window !== undefined,
            lastError: d.lastError ?? null,
          },
        ]),
      ),
      notifiers: Object.keys(this.#cfg.notify),
    };
  }

  /** Each destination's history, for the engine that replaces this one. */
  carry(): Map<string, CarriedState> {
    return new Map(
      [...this.#dests.values()].map((d) => [
        d.name,
        { path: d.target.where, current: d.current, previous: d.previous, failed: d.failed },
      ]),
    );
  }

  /** Per-destination render counts (tests of dependency tracking). */
  renders(name: string): number {
    return this.#dests.get(name)?.renders ?? 0;
  }

  // --- sources ------------------------------------------------------------------------------------

  #host(s: SourceState): SourceHost {
    return {
      clock: this.#opts.clock,
      random: this.#opts.random,
      logger: this.#opts.logger,
      env: this.#opts.env,
      update: (values: ReadonlyMap<string, unknown>, version: string, structured?: boolean) =>
        this.#update(s, values, version, structured ?? false),
      patch: (changes: ReadonlyMap<string, unknown>, version: string) => this.#patch(s, changes, version),
      contact: (version?: string) => this.#contact(s, version),
      fail: (err: PillionError) => this.#fail(s, err),
    };
  }

  #contact(s: SourceState, version?: string): void {
    if (this.#stopped) return;
    s.lastContact = this.#opts.clock.now();
    if (version !== undefined) s.version = version;
    if (s.state === 'failing') {
      this.#opts.logger.info({ source: s.name }, 'sync source reached again');
      this.#log.clear(`source:${s.name}`);
    }
    s.state = 'ok';
    s.lastError = undefined;
    if (s.stale) {
      s.stale = false;
      this.#m.stale.set({ source: s.name }, 0);
    }
    this.#armStale(s);
  }

  /** A value's text parsed as the source says; throws PILLION_ERR_SYNC_SOURCE without the value. */
  #parse(s: SourceState, k: string, v: unknown, structured: boolean): unknown {
    if (structured || typeof v !== 'string' || !('parse' in s.cfg) || s.cfg.parse === 'raw') return v;
    try {
      return s.cfg.parse === 'json' ? JSON.parse(v) : parseYaml(v);
    } catch {
      const what = k === '' ? 'its value' : `key "${k}"`;
      throw new PillionError(
        'PILLION_ERR_SYNC_SOURCE',
        `source ${s.name}: ${what} is not valid ${String(s.cfg.parse).toUpperCase()}`,
      );
    }
  }

  #update(s: SourceState, raw: ReadonlyMap<string, unknown>, version: string, structured: boolean): void {
    if (this.#stopped) return;
    const values = new Map<string, unknown>();
    try {
      for (const [k, v] of raw) values.set(k, this.#parse(s, k, v, structured));
    } catch (err) {
      return this.#fail(s, err as PillionError);
    }
    const changed: string[] = [];
    for (const [k, v] of values) if (!same(s.values.get(k), v)) changed.push(k);
    for (const k of s.values.keys()) if (!values.has(k)) changed.push(k);
    const first = s.state === 'pending';
    this.#contact(s, version);
    if (changed.length === 0 && !first) return;
    s.values = values;
    this.#changed(s, changed, first);
  }

  /** Some keys changed (undefined: deleted): the cost is that of the change, not of the source's size. */
  #patch(s: SourceState, changes: ReadonlyMap<string, unknown>, version: string): void {
    if (this.#stopped) return;
    const parsed = new Map<string, unknown>();
    try {
      for (const [k, v] of changes) parsed.set(k, v === undefined ? undefined : this.#parse(s, k, v, false));
    } catch (err) {
      return this.#fail(s, err as PillionError);
    }
    const changed: string[] = [];
    for (const [k, v] of parsed) {
      if (v === undefined) {
        if (s.values.delete(k)) changed.push(k);
      } else if (!same(s.values.get(k), v)) {
        s.values.set(k, v);
        changed.push(k);
      }
    }
    const first = s.state === 'pending';
    this.#contact(s, version);
    if (changed.length > 0 || first) this.#changed(s, changed, first);
  }

  #changed(s: SourceState, changed: readonly string[], first: boolean): void {
    s.object = undefined;
    s.lastChange = this.#opts.clock.now();
    this.#m.updates.inc({ source: s.name });
    if (first) s.settleFirst();
    // Until every source has answered once, start() has not rendered: its first render takes this in.
    if (!this.#settled) return;
    const byKey = this.#index.get(s.name);
    if (!byKey) return;
    const hit = new Set<DestState>(byKey.get(EVERY_KEY));
    for (const k of changed) for (const d of byKey.get(k) ?? []) hit.add(d);
    for (const d of hit) this.#trigger(d);
  }

  #fail(s: SourceState, err: PillionError): void {
    if (this.#stopped) return;
    s.state = 'failing';
    s.lastError = this.#record(err);
    this.#m.sourceErrors.inc({ source: s.name, code: err.code });
    this.#log.log(
      'warn',
      `source:${s.name}`,
      { code: err.code, source: s.name },
      this.#opts.once ? err.message : `${err.message}; the last files stay, retrying`,
    );
    s.settleFirst();
  }

  #armStale(s: SourceState): void {
    if (!canGoStale(s.cfg) || this.#opts.once) return;
    s.staleTimer?.cancel();
    const after = s.cfg.staleAfter;
    s.staleTimer = this.#opts.clock.setTimeout(() => {
      if (this.#stopped) return;
      s.stale = true;
      this.#m.stale.set({ source: s.name }, 1);
      this.#opts.logger.error(
        { code: 'PILLION_ERR_SYNC_STALE', source: s.name },
        `sync source ${s.name} not reached for ${after} ms: stale (its files stay; readiness fails)`,
      );
    }, after);
  }

  // --- destinations --------------------------------------------------------------------------------

  /** A key the destination reads changed: render after its `wait` (consul-template's min/max). */
  #trigger(d: DestState): void {
    if (this.#stopped) return;
    const { min, max } = d.wait;
    if (min === 0) {
      void this.#render(d);
      return;
    }
    const now = this.#opts.clock.now();
    d.burstStart ??= now;
    const due = Math.min(now + min, d.burstStart + Math.max(max, min));
    d.timer?.cancel();
    d.timer = this.#opts.clock.setTimeout(() => {
      d.burstStart = undefined;
      d.timer = undefined;
      void this.#render(d);
    }, due - now);
  }

  /** Renders one destination; one render at a time per destination, a change during it renders again. */
  #render(d: DestState): Promise<void> {
    if (d.running) {
      d.again = true;
      return d.running;
    }
    d.running = (async () => {
      do {
        d.again = false;
        await this.#renderOnce(d);
      } while (d.again && !this.#stopped);
    })().finally(() => (d.running = undefined));
    return d.running;
  }

  async #renderOnce(d: DestState): Promise<void> {
    if (this.#stopped) return;
    if (d.compileError) {
      this.#m.renders.inc({ destination: d.name, result: 'failed' });
      return;
    }
    d.renders++;
    const table = new Map<string, SourceValues>();
    for (const name of d.deps) table.set(name, this.#sources.get(name)!);
    let files: RenderedFile[];
    try {
      files = d.parts.map((p) => ({
        path: p.path,
        data: p.content.render(table),
        mode: p.mode ?? (d.secret ? 0o400 : 0o644),
        uid: p.uid,
        gid: p.gid,
      }));
      const total = files.reduce((n, f) => n + f.data.length, 0);
      if (total > d.cfg.maxBytes)
        throw new PillionError(
          'PILLION_ERR_SYNC_RENDER',
          `destination ${d.name}: ${total} bytes rendered, more than maxBytes (${d.cfg.maxBytes})`,
        );
    } catch (err) {
      return this.#destError(d, err, 'failed');
    }
    if (unchanged(d.target, files)) {
      this.#m.renders.inc({ destination: d.name, result: 'unchanged' });
      this.#destOk(d);
      d.current ??= { version: this.#version(files), at: new Date(this.#opts.clock.now()).toISOString() };
      return;
    }
    const version = this.#version(files);
    const sourceVersions = this.#sourceVersions(d);
    if (d.failed && d.failed.version === version && sameVersions(d.failed.sourceVersions, sourceVersions)) {
      this.#m.renders.inc({ destination: d.name, result: 'held' });
      this.#log.log(
        'warn',
        `held:${d.name}`,
        { code: 'PILLION_ERR_SYNC_ROLLED_BACK', destination: d.name, version },
        `destination ${d.name}: version ${version} was rolled back; not applied again until its source changes`,
      );
      return;
    }
    if (d.schemaCheck) {
      try {
        d.schemaCheck(files[0]!.data, d.target.where);
      } catch (err) {
        return this.#destError(d, err, 'refused');
      }
    }
    if (d.cfg.check?.command) {
      try {
        await check(d.target, files, d.cfg.check.command, d.cfg.check.timeout, d.secret);
      } catch (err) {
        return this.#destError(d, err, 'refused');
      }
      if (this.#stopped) return;
    }
    const healthyBefore = this.#opts.appHealth?.healthy ?? false;
    const before = this.#cfg.rollback && !this.#opts.once ? read(d.target) : undefined;
    try {
      write(d.target, files);
    } catch (err) {
      return this.#destError(d, err, 'failed');
    }
    const at = new Date(this.#opts.clock.now()).toISOString();
    const prevVersion = d.current;
    d.previous = d.current;
    d.current = { version, at };
    this.#m.renders.inc({ destination: d.name, result: 'written' });
    this.#m.lastWrite.set({ destination: d.name }, this.#opts.clock.now() / 1000);
    this.#destOk(d);
    this.#opts.logger.info(
      { destination: d.name, path: d.target.where, version, previous: prevVersion?.version ?? null },
      'sync: destination written',
    );
    if (this.#opts.once) return;
    // Only a change can be rolled back: a first file has nothing to go back to.
    if (this.#cfg.rollback && this.#opts.appHealth && healthyBefore && before !== undefined)
      this.#watch(d, before, prevVersion, sourceVersions);
    await this.#notify(d);
  }

  #destOk(d: DestState): void {
    d.rendered = true;
    if (d.lastError) this.#log.clear(`dest:${d.name}`);
    d.lastError = undefined;
  }

  #destError(d: DestState, err: unknown, result: 'failed' | 'refused'): void {
    const e =
      err instanceof PillionError
        ? err
        : new PillionError('PILLION_ERR_SYNC_WRITE', `destination ${d.name}: ${(err as Error).message}`);
    d.lastError = this.#record(e);
    this.#m.renders.inc({ destination: d.name, result });
    this.#log.log(
      'error',
      `dest:${d.name}`,
      { code: e.code, destination: d.name },
      this.#opts.once ? e.message : `${e.message}; the old file is kept`,
    );
  }

  async #notify(d: DestState): Promise<void> {
    const all: { name: string; notify: () => Promise<void> }[] = [...d.notifiers];
    if (d.useExec && this.#opts.exec) {
      const exec = this.#opts.exec;
      all.push({ name: 'exec', notify: () => exec.send() });
    }
    await Promise.all(
      all.map(async (n) => {
        try {
          await n.notify();
          this.#m.notifications.inc({ notifier: n.name, result: 'ok' });
          this.#log.clear(`notify:${n.name}`);
        } catch (err) {
          this.#m.notifications.inc({ notifier: n.name, result: 'failed' });
          const e = err as PillionError;
          this.#log.log(
            'error',
            `notify:${n.name}`,
            { code: e.code ?? 'PILLION_ERR_SYNC_NOTIFY', notifier: n.name, destination: d.name },
            e.message,
          );
        }
      }),
    );
  }

  // --- roll back ------------------------------------------------------------------------------------

  /** Watches the app for rollback.window after a change, keeping the files it replaced to go back to. */
  #watch(
    d: DestState,
    before: Snapshot,
    beforeVersion: VersionRecord | undefined,
    sourceVersions: Record<string, string | undefined>,
  ): void {
    const appHealth = this.#opts.appHealth!;
    // The app was healthy with the files just replaced (a change is watched only then): those are what to go back to.
    const keep = { snapshot: before, snapshotVersion: beforeVersion };
    this.#endWindow(d);
    const window: Window = {
      ...keep,
      sourceVersions,
      timer: this.#opts.clock.setTimeout(() => this.#endWindow(d), this.#cfg.rollback!.window),
      unsubscribe: appHealth.onChange((healthy, reason) => {
        if (!healthy) void this.#rollBack(d, reason ?? 'unhealthy');
      }),
    };
    d.window = window;
  }

  #endWindow(d: DestState): void {
    if (!d.window) return;
    d.window.timer.cancel();
    d.window.unsubscribe();
    d.window = undefined;
  }

  async #rollBack(d: DestState, reason: string): Promise<void> {
    const w = d.window;
    if (!w || this.#stopped) return;
    this.#endWindow(d);
    const bad = d.current!;
    // A render in progress would write over what is put back.
    if (d.running) await d.running;
    try {
      restore(d.target, w.snapshot);
    } catch (err) {
      this.#destError(d, err, 'failed');
      return;
    }
    const at = new Date(this.#opts.clock.now()).toISOString();
    d.failed = { version: bad.version, at, reason, sourceVersions: w.sourceVersions };
    d.current = w.snapshotVersion ?? (w.snapshot ? { version: this.#version(w.snapshot), at } : undefined);
    d.previous = { ...bad };
    this.#m.rollbacks.inc({ destination: d.name });
    this.#opts.logger.error(
      {
        code: 'PILLION_ERR_SYNC_ROLLED_BACK',
        destination: d.name,
        failed: bad.version,
        restored: d.current?.version ?? null,
        reason,
      },
      `sync: the app turned unhealthy after destination ${d.name} changed; the previous files are back`,
    );
    await this.#notify(d);
  }

  // --- helpers ----------------------------------------------------------------------------------------

  #version(files: readonly RenderedFile[]): string {
    const h = createHash('sha256').update(this.#salt);
    for (const f of files) h.update(f.path).update('\0').update(f.data).update('\0');
    return h.digest('hex').slice(0, 12);
  }

  #sourceVersions(d: DestState): Record<string, string | undefined> {
    return Object.fromEntries([...d.deps].map((n) => [n, this.#sources.get(n)?.version]));
  }

  #record(err: unknown): ErrorRecord {
    const e = err as PillionError;
    return {
      code: e.code ?? 'PILLION_ERR_SYNC_SOURCE',
      message: e.message,
      at: new Date(this.#opts.clock.now()).toISOString(),
    };
  }
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameVersions(a: Record<string, string | undefined>, b: Record<string, string | undefined>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}
