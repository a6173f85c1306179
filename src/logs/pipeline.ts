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
import { appendsOnly, compileTransforms, type TransformChain } from './transforms/index.js';
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
   * lines, so it waits while a sink already has a whole batch waiting (see SinkRunner.backlogged).
   * Sources that cannot pause without holding up their senders (stdin, http, syslog) fill the
   * buffer.
   */
  readAhead: boolean;
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
      const entry: SourceEntry = {
        name,
        source: undefined as never,
        chain: chains.get(name),
        sinks,
        readAhead: sc.type !== 'tail',
      };
      entry.source = this.#source(name, sc, this.#context(entry));
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
    await Promise.allSettled(this.#sources.map((s) => s.source.stop()));
    await Promise.allSettled([...this.#sinks.values()].map((s) => s.runner.drain(deadline)));
    this.#store.flush();
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.#sources.map((s) => s.source.stop()));
    await Promise.allSettled([...this.#sinks.values()].map((s) => s.runner.stop()));
    this.#store.flush();
    this.#store.close();
    this.#started = false;
  }

  readiness(): Readiness {
    const now = this.#opts.timing.clock.now();
    for (const s of this.#sinks.values()) {
      const since = s.runner.failingSince;
      if (since !== undefined && now - since >= this.#cfg.unhealthyAfter)
        return {
          ready: false,
          reason: `logs sink "${s.name}" has been failing for ${Math.round((now - since) / 1000)}s`,
        };
    }
    return { ready: true };
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
      hasCapacity: () => !entry.sinks.some((s) => s.runner.holdsBack(true)),
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
    const item: SinkItem = { chunk, events, bytes: chunk.bytes };
    let room = true;
    for (const s of targets) {
      s.runner.push(item);
      if (s.runner.holdsBack(entry.readAhead)) room = false;
    }
    return room;
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
    const readAhead = entry.readAhead;
    for (;;) {
      const busy = entry.sinks.find((s) => s.runner.holdsBack(readAhead));
      if (!busy) return;
      await busy.runner.whenNotFull({ readAhead });
    }
  }

  #source(name: string, sc: SourceConfig, ctx: SourceContext): LogSource {
    switch (sc.type) {
      case 'tail':
        return createTailSource(
          sc,
          ctx,
          compileParser(sc.parser, ctx.stats.parseErrors, {
            // The framer adds fields of its own to CRI records and with pathField.
            keepRaw:
              sc.format === 'lines' && sc.pathField === undefined && appendsOnly(this.#cfg.transforms, name),
          }),
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
