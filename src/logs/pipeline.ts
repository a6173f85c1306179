// One running log pipeline: sources emit chunks, each source's transform chain edits them, and
// every sink that takes the source gets the events through its own runner (batch, retry, buffer).
// A chunk is acknowledged to its source once every such sink has it; each sink's acknowledgement
// also moves that sink's checkpoint for the chunk's stream, so after a crash a sink that was ahead
// skips what it already has and at most its one in-flight batch is sent twice.

import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { PillionError } from '../lib/errors.js';
import type { Registry } from '../metrics/index.js';
import type { Readiness } from '../runtime/module.js';
import { CheckpointStore } from './checkpoints.js';
import type { LogsConfig, SinkConfig, SourceConfig } from './config.js';
import { compileParser } from './parsers/index.js';
import { createClickhouseDriver } from './sinks/clickhouse.js';
import { createElasticsearchDriver } from './sinks/elasticsearch.js';
import { createFileDriver } from './sinks/file.js';
import { createHttpDriver } from './sinks/http.js';
import { createLokiDriver } from './sinks/loki.js';
import { type SinkItem, SinkRunner } from './sinks/runner.js';
import { createStdoutDriver } from './sinks/stdout.js';
import { createSyslogDriver } from './sinks/syslog.js';
import { createHttpSource } from './sources/http.js';
import { createStdinSource } from './sources/stdin.js';
import { createSyslogSource } from './sources/syslog.js';
import { createTailSource } from './sources/tail.js';
import { LogStats } from './stats.js';
import { appendsOnly, compileTransforms, leanNames, type TransformChain } from './transforms/index.js';
import type { Chunk, LogSource, SinkDriver, SourceContext, Timing } from './types.js';

export interface PipelineOptions {
  dataDir: string;
  logger: Logger;
  metrics: Registry;
  timing: Timing;
  env: Readonly<Record<string, string | undefined>>;
  /** Overrides for tests: the stream stdin sources read, the stream stdout sinks write. */
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
}

interface SinkEntry {
  name: string;
  runner: SinkRunner;
}

interface SourceEntry {
  name: string;
  source: LogSource;
  chain: TransformChain | undefined;
  sinks: SinkEntry[];
  /**
   * Whether the source reads ahead into the sinks' buffers. Tail does not: its file keeps the
   * lines, so it waits while a sink already has two whole batches waiting (see
   * SinkRunner.backlogged), failing or not — unless another of its sinks delivers meanwhile (see
   * #holdsBack). Sources that cannot pause without holding up their senders (stdin, http, syslog)
   * fill the buffer.
   */
  readAhead: boolean;
  /** Its JSON events keep their line's text (see keepsRaw). */
  keepRaw: boolean;
  /** When its events can be lean, the names a lean parse leaves whole (see leanFields). */
  lean: string[] | undefined;
  /** What a chunk's events take in memory: bytes read × perByte + events × perEvent (see EVENT_COST). */
  cost: { perByte: number; perEvent: number };
}

/**
 * The heap a chunk's events take, per byte read and per event, measured with V8's heap statistics
 * after a full collection (Node 20; memory.test.ts keeps it honest): a JSON line that keeps its
 * text (RAW) holds that text and the parsed values, about 2 × its bytes + 176; other events about
 * their bytes + 100 (a `message` string, or parsed fields, and the object); a syslog message splits
 * into a dozen fields, about its bytes + 350. A lean event (its text alone, see leanEvent in
 * types.ts) takes about its bytes + 152 (the object, its text as a slice and, once enriched, the
 * appended text). Counting this, not the bytes read, is what lets a
 * memory buffer's maxBytes bound the memory it holds.
 */
export const EVENT_COST = {
  lean: { perByte: 1, perEvent: 152 },
  raw: { perByte: 2, perEvent: 176 },
  parsed: { perByte: 1, perEvent: 112 },
  syslog: { perByte: 1, perEvent: 352 },
} as const;

/**
 * Sinks that read nothing of an event but its JSON text (encodeEvent): a source whose sinks are all
 * of these can keep its events lean. Loki (labels) and syslog (severity, app, message fields) read
 * fields.
 */
const TEXT_ONLY_SINKS: ReadonlySet<SinkConfig['type']> = new Set([
  'file',
  'stdout',
  'http',
  'clickhouse',
  'elasticsearch',
]);

/** A tail source parsing JSON whose transforms only append: its events keep their line's text. */
export function keepsRaw(cfg: LogsConfig, source: string): boolean {
  const sc = cfg.sources[source];
  return (
    sc !== undefined &&
    sc.type === 'tail' &&
    sc.parser === 'json' &&
    sc.format === 'lines' &&
    sc.pathField === undefined &&
    appendsOnly(cfg.transforms, source)
  );
}

/**
 * The names a lean parse must leave whole (see leanEvent in types.ts), when the source's events can
 * be lean: they keep their text, only enrich transforms apply, and every sink it feeds only sends
 * text. Undefined otherwise.
 */
export function leanFields(cfg: LogsConfig, source: string, sinks: readonly string[]): string[] | undefined {
  if (!keepsRaw(cfg, source)) return undefined;
  if (!sinks.every((s) => TEXT_ONLY_SINKS.has(cfg.sinks[s]!.type))) return undefined;
  return leanNames(cfg.transforms, source);
}

/** Acknowledgements still owed for a chunk, by the sinks it went to. */
const pendingAcks = new WeakMap<Chunk, number>();

export class Pipeline {
  readonly #cfg: LogsConfig;
  readonly #opts: PipelineOptions;
  readonly #log: Logger;
  readonly #stats: LogStats;
  readonly #store: CheckpointStore;
  readonly #sinks = new Map<string, SinkEntry>();
  readonly #sources: SourceEntry[] = [];
  #started = false;
  /** Set once drain or stop begins: sources waiting for room stop waiting. */
  #closing = false;

  constructor(cfg: LogsConfig, opts: PipelineOptions) {
    this.#cfg = cfg;
    this.#opts = opts;
    this.#log = opts.logger;
    this.#stats = new LogStats(opts.metrics);
    try {
      mkdirSync(opts.dataDir, { recursive: true, mode: 0o750 });
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_LOGS_DATA_DIR',
        `cannot create the logs data directory ${opts.dataDir}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.#store = CheckpointStore.open(join(opts.dataDir, 'checkpoints.json'), this.#log);

    for (const [name, sc] of Object.entries(cfg.sinks)) {
      const runner = new SinkRunner({
        name,
        driver: this.#driver(sc),
        batch: sc.batch,
        retry: sc.retry,
        buffer: sc.buffer,
        dataDir: opts.dataDir,
        timing: opts.timing,
        logger: this.#log.child({ sink: name }),
        stats: this.#stats.sink(name),
        onAck: (item) => this.#acked(name, item),
        // How a tail source paces depends on whether its other sinks deliver: ask the waiters again.
        onHealthChange: () => {
          for (const s of this.#sinks.values()) s.runner.recheck();
        },
      });
      this.#sinks.set(name, { name, runner });
    }

    const sourceNames = Object.keys(cfg.sources);
    const chains = compileTransforms(cfg.transforms, sourceNames, {
      hostname: hostname(),
      env: opts.env,
      clock: opts.timing.clock,
      readFile: (p) => readFileSync(p, 'utf8'),
    });
    for (const [name, sc] of Object.entries(cfg.sources)) {
      const sinks = [...this.#sinks.values()].filter((s) => {
        const only = cfg.sinks[s.name]!.sources;
        return only === undefined || only.includes(name);
      });
      const keepRaw = keepsRaw(cfg, name);
      const lean = leanFields(
        cfg,
        name,
        sinks.map((s) => s.name),
      );
      const entry: SourceEntry = {
        name,
        source: undefined as never,
        chain: chains.get(name),
        sinks,
        readAhead: sc.type !== 'tail',
        keepRaw,
        lean,
        cost:
          sc.type === 'syslog'
            ? EVENT_COST.syslog
            : lean !== undefined
              ? EVENT_COST.lean
              : keepRaw
                ? EVENT_COST.raw
                : EVENT_COST.parsed,
      };
      entry.source = this.#source(entry, sc, this.#context(entry));
      this.#sources.push(entry);
    }
  }

  async start(): Promise<void> {
    for (const s of this.#sinks.values()) await s.runner.start();
    const started: LogSource[] = [];
    try {
      for (const s of this.#sources) {
        await s.source.start();
        started.push(s.source);
      }
    } catch (err) {
      await Promise.allSettled(started.map((s) => s.stop()));
      await Promise.allSettled([...this.#sinks.values()].map((s) => s.runner.stop()));
      this.#store.close();
      throw err;
    }
    this.#started = true;
  }

  /** Stops the sources (flushing what they hold), then delivers what the sinks hold until deadline. */
  async drain(deadline: number): Promise<void> {
    if (!this.#started) return;
    this.#closing = true;
    await Promise.allSettled(this.#sources.map((s) => s.source.stop()));
    await Promise.allSettled([...this.#sinks.values()].map((s) => s.runner.drain(deadline)));
    this.#store.flush();
  }

  async stop(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled(this.#sources.map((s) => s.source.stop()));
    await Promise.allSettled([...this.#sinks.values()].map((s) => s.runner.stop()));
    this.#store.flush();
    this.#store.close();
    this.#started = false;
  }

  /**
   * Not ready while a sink has been failing for unhealthyAfter. The reason says more than that,
   * even while ready: a sink failing from its first failure (and why), a source's backlog while it
   * is paused, paths a source cannot read.
   */
  readiness(): Readiness {
    const now = this.#opts.timing.clock.now();
    const down: string[] = [];
    const notes: string[] = [];
    for (const s of this.#sinks.values()) {
      const since = s.runner.failingSince;
      if (since === undefined) continue;
      const secs = Math.round((now - since) / 1000);
      const why = s.runner.lastFailure ?? 'unknown';
      if (now - since >= this.#cfg.unhealthyAfter)
        down.push(`logs sink "${s.name}" has been failing for ${secs}s: ${why}`);
      else
        notes.push(
          `logs sink "${s.name}" is failing (for ${secs}s; not ready once that reaches ${Math.round(this.#cfg.unhealthyAfter / 1000)}s): ${why}`,
        );
    }
    for (const s of this.#sources) if (s.source.health) notes.push(...s.source.health());
    const reasons = [...down, ...notes];
    if (reasons.length === 0) return { ready: true };
    return { ready: down.length === 0, reason: reasons.join('; ') };
  }

  #context(entry: SourceEntry): SourceContext {
    const sinkNames = entry.sinks.map((s) => s.name);
    return {
      name: entry.name,
      logger: this.#log.child({ source: entry.name }),
      clock: this.#opts.timing.clock,
      stats: this.#stats.source(entry.name),
      dataDir: this.#opts.dataDir,
      emit: (chunk) => this.#emit(entry, chunk),
      capacity: () => this.#capacity(entry),
      hasCapacity: () => !entry.sinks.some((s) => this.#holdsBack(entry, s)),
      checkpoints: this.#store.forSource(entry.name, sinkNames),
      maxChunkEvents: Math.min(...sinkNames.map((n) => this.#cfg.sinks[n]!.batch.maxEvents)),
    };
  }

  #emit(entry: SourceEntry, chunk: Chunk): boolean {
    const before = chunk.events.length;
    const events = entry.chain ? entry.chain(chunk.events) : chunk.events;
    if (events.length !== before)
      this.#stats.filtered.with({ source: entry.name }).value += before - events.length;

    // Every sink gets the chunk, even one whose events were all filtered out: its runner then
    // acknowledges it in order, so no sink's checkpoint passes a chunk it still holds. Only a sink
    // that already acknowledged the chunk's stream past its end (a resume) is skipped.
    let targets = entry.sinks;
    if (chunk.stream !== undefined && chunk.endOffset !== undefined) {
      const stream = chunk.stream;
      const end = chunk.endOffset;
      targets = targets.filter((s) => (this.#store.acknowledged(stream, s.name) ?? -1) < end);
    }
    if (targets.length === 0) {
      chunk.onAck?.();
      return true;
    }
    pendingAcks.set(chunk, targets.length);
    const cost = chunk.bytes * entry.cost.perByte + events.length * entry.cost.perEvent;
    const item: SinkItem = { chunk, events, bytes: chunk.bytes, cost };
    let room = true;
    for (const s of targets) {
      s.runner.push(item);
      if (this.#holdsBack(entry, s)) room = false;
    }
    return room;
  }

  /**
   * Whether a source must stop reading for a sink: its buffer is full; or, for a source that does
   * not read ahead (tail), the sink has two batches waiting. That holds for a failing sink too —
   * the file keeps the lines, and memory stays at a few batches through an outage — except while
   * another sink of the source delivers: then the failing one's buffer fills (to its bound) so the
   * other keeps going.
   */
  #holdsBack(entry: SourceEntry, s: SinkEntry): boolean {
    const r = s.runner;
    if (r.full) return true;
    if (entry.readAhead || !r.backlogged) return false;
    if (r.failingSince === undefined) return true;
    for (const o of entry.sinks) if (o !== s && o.runner.failingSince === undefined) return false;
    return true;
  }

  #acked(sink: string, item: SinkItem): void {
    const chunk = item.chunk;
    if (chunk.stream !== undefined && chunk.endOffset !== undefined)
      this.#store.advance(chunk.stream, sink, chunk.endOffset);
    const left = (pendingAcks.get(chunk) ?? 1) - 1;
    if (left > 0) {
      pendingAcks.set(chunk, left);
      return;
    }
    pendingAcks.delete(chunk);
    chunk.onAck?.();
  }

  async #capacity(entry: SourceEntry): Promise<void> {
    // A stopped runner answers at once, full or not: stop asking then, or this never yields.
    while (!this.#closing) {
      const busy = entry.sinks.find((s) => this.#holdsBack(entry, s));
      if (!busy) return;
      await busy.runner.whenNotFull(() => this.#holdsBack(entry, busy));
    }
  }

  #source(entry: SourceEntry, sc: SourceConfig, ctx: SourceContext): LogSource {
    switch (sc.type) {
      case 'tail':
        return createTailSource(
          sc,
          ctx,
          // The framer adds fields of its own to CRI records and with pathField.
          compileParser(sc.parser, ctx.stats.parseErrors, { keepRaw: entry.keepRaw, lean: entry.lean }),
        );
      case 'stdin':
        return createStdinSource(sc, ctx, compileParser(sc.parser, ctx.stats.parseErrors), this.#opts.stdin);
      case 'http':
        return createHttpSource(sc, ctx);
      case 'syslog':
        return createSyslogSource(sc, ctx);
    }
  }

  #driver(sc: SinkConfig): SinkDriver {
    switch (sc.type) {
      case 'clickhouse':
        return createClickhouseDriver(sc);
      case 'elasticsearch':
        return createElasticsearchDriver(sc);
      case 'loki':
        return createLokiDriver(sc);
      case 'http':
        return createHttpDriver(sc);
      case 'syslog':
        return createSyslogDriver(sc);
      case 'file':
        return createFileDriver(sc);
      case 'stdout':
        return createStdoutDriver(this.#opts.stdout);
    }
  }
}
