// What every sink shares: batching, one batch in flight, retries with back-off, dead letters, the
// memory or disk buffer and its bound, and acknowledgements in push order. Drivers only send.
// A run of failures is remembered in the data directory, so a restart during an outage does not
// look healthy until the sink has failed for another unhealthyAfter.

import { join } from 'node:path';
import type { Logger } from 'pino';
import type { TimerHandle } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import type { Series } from '../../metrics/index.js';
import { type BufferPosition, DiskBuffer } from '../buffer/disk-buffer.js';
import { retryDelay } from '../../lib/backoff.js';
import type { BatchConfig, BufferConfig, RetryConfig } from '../config.js';
import type { Chunk, LogEvent, SendOutcome, SinkDriver, Timing } from '../types.js';
import { DeadLetterFile } from './dead-letter.js';
import { FailingSinceFile } from './failing-since.js';

export interface SinkStats {
  events: Series;
  bytes: Series;
  retries: Series;
  deadLettered: Series;
  failures: Series;
  /** A gauge: the runner sets its value. */
  bufferBytes: Series;
}

export interface SinkItem {
  chunk: Chunk;
  events: LogEvent[];
  /** Bytes the source read for the events: batches and metrics count these. */
  bytes: number;
  /**
   * What the events take in memory (parsed strings and objects, estimated): the memory buffer's
   * bound counts this, so that maxBytes bounds the heap it holds. `bytes` when absent.
   */
  cost?: number;
}

export interface SinkRunnerOptions {
  name: string;
  driver: SinkDriver;
  batch: BatchConfig;
  retry: RetryConfig;
  buffer: BufferConfig;
  /** The disk buffer lives in `<dataDir>/buffers/<name>/`, dead letters in `<dataDir>/dead-letter/<name>.ndjson`. */
  dataDir: string;
  timing: Timing;
  logger: Logger;
  stats: SinkStats;
  /**
   * Called once per pushed item, in push order, when the sink has it: delivered (or dead-lettered),
   * or — with a disk buffer — written to the disk buffer. Never called from within push().
   */
  onAck(item: SinkItem): void;
  /** Called when the sink starts or stops failing (sources may then pace differently). */
  onHealthChange?: () => void;
}

/** Between two failure lines while a sink keeps failing. */
const LOG_INTERVAL_MS = 60_000;
/** After the disk refused a write with an I/O error, try again this often. */
const DISK_RETRY_MS = 1000;
const COMPACT_AT = 1024;

export { retryDelay } from '../../lib/backoff.js';

/** Memory mode: a pushed item and how many of its events are done (delivered or dead-lettered). */
interface Entry {
  item: SinkItem;
  done: number;
  /** Clock time of the push: the age of the item's oldest unsent event. */
  at: number;
}

/** A source waiting for room (see whenNotFull): it may go on once `holds` is false. */
interface Waiter {
  holds: () => boolean;
  resolve: () => void;
}

interface Batch {
  events: LogEvent[];
  bytes: number;
  /** Memory mode: the items the events came from, as [entry, count] pairs in order. */
  entries: Entry[];
  counts: number[];
  /** Disk mode: the buffer position after the batch. */
  end: BufferPosition | undefined;
}

export class SinkRunner {
  readonly #name: string;
  readonly #driver: SinkDriver;
  readonly #batch: BatchConfig;
  readonly #retry: RetryConfig;
  readonly #maxBytes: number;
  readonly #diskMode: boolean;
  readonly #dataDir: string;
  readonly #timing: Timing;
  readonly #log: Logger;
  readonly #stats: SinkStats;
  readonly #onAck: (item: SinkItem) => void;

  // Memory mode: unacknowledged items in push order; [#head] is the oldest, [#qi] holds the first
  // event not yet in a batch (at index #ei).
  #queue: (Entry | undefined)[] = [];
  #head = 0;
  #qi = 0;
  #ei = 0;
  /** The memory buffer's cost: what its items hold (see SinkItem.cost). */
  #memBytes = 0;

  // Disk mode.
  #disk: DiskBuffer | undefined;
  /** Items the disk refused (full, or not open yet), written in order as room appears. */
  #overflow: SinkItem[] = [];
  #overflowBytes = 0;
  /** Items written to disk, acknowledged together in a microtask. */
  #toAck: SinkItem[] = [];
  #ackScheduled = false;
  #backlog = false;
  #diskRetry: TimerHandle | undefined;

  // Events pushed and not yet taken into a batch, for the batch triggers.
  #pendingEvents = 0;
  #pendingBytes = 0;
  #pendingSince: number | undefined;

  #started = false;
  #stopped = false;
  #draining = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #ageTimer: TimerHandle | undefined;
  #inflight: AbortController | undefined;
  #backoffTimer: TimerHandle | undefined;
  #backoffDone: (() => void) | undefined;
  #waiting: Waiter[] = [];
  #drained: (() => void)[] = [];
  #deadLetters: DeadLetterFile | undefined;

  #failingSince: number | undefined;
  /** A run of failures that was going on when the process last stopped (see failingSince). */
  #carriedSince: number | undefined;
  #lastFailure: string | undefined;
  readonly #healthFile: FailingSinceFile;
  readonly #onHealthChange: (() => void) | undefined;
  #lastLogAt: number | undefined;
  #suppressed = 0;
  #loggedThisRun = false;

  constructor(opts: SinkRunnerOptions) {
    this.#name = opts.name;
    this.#driver = opts.driver;
    this.#batch = opts.batch;
    this.#retry = opts.retry;
    this.#maxBytes = opts.buffer.maxBytes;
    this.#diskMode = opts.buffer.type === 'disk';
    this.#dataDir = opts.dataDir;
    this.#timing = opts.timing;
    this.#log = opts.logger;
    this.#stats = opts.stats;
    this.#onAck = opts.onAck;
    this.#onHealthChange = opts.onHealthChange;
    this.#healthFile = new FailingSinceFile(opts.dataDir, opts.name, opts.logger);
  }

  /** Opens the disk buffer and starts delivering, beginning with what it holds from before a restart. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const carried = this.#healthFile.load();
    if (carried) {
      this.#carriedSince = carried.failingSince;
      this.#lastFailure = carried.reason;
    }
    if (this.#diskMode) {
      const dir = join(this.#dataDir, 'buffers', this.#name);
      try {
        this.#disk = DiskBuffer.open({
          dir,
          maxBytes: this.#maxBytes,
          clock: this.#timing.clock,
          logger: this.#log,
        });
      } catch (err) {
        throw new PillionError(
          'PILLION_ERR_LOGS_DATA_DIR',
          `cannot open the disk buffer of sink "${this.#name}" in ${dir}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      this.#backlog = this.#disk.hasUnread;
      this.#flushOverflow();
    }
    this.#gauge();
    this.#loop = this.#run();
  }

  /** Takes an item; always accepts it (check `full` afterwards). */
  push(item: SinkItem): void {
    if (this.#diskMode) {
      if (this.#overflow.length === 0 && this.#write(item)) this.#queueAck(item);
      else {
        this.#overflow.push(item);
        this.#overflowBytes += item.cost ?? item.bytes;
      }
      this.#gauge();
      return;
    }
    const n = item.events.length;
    const wasEmpty = this.#head >= this.#queue.length;
    this.#queue.push({ item, done: 0, at: this.#timing.clock.now() });
    this.#memBytes += item.cost ?? item.bytes;
    // A failure carried over from before a restart counts again now that there is something to send.
    if (wasEmpty && this.#carriedSince !== undefined && this.#failingSince === undefined)
      this.#onHealthChange?.();
    this.#gauge();
    if (n === 0) {
      // Nothing to send; it is acknowledged when the items before it are.
      queueMicrotask(() => this.#ackMemory());
      return;
    }
    this.#pending(n, item.bytes);
  }

  /** Buffered bytes ≥ buffer.maxBytes: sources should pause. */
  get full(): boolean {
    if (this.#diskMode) return this.#overflow.length > 0 || (this.#disk?.bytes ?? 0) >= this.#maxBytes;
    return this.#memBytes >= this.#maxBytes;
  }

  /**
   * Memory mode: two whole batches already wait behind the one in flight (one is enough to keep
   * the sink busy; the second covers the time the source takes to resume). A source that can pause
   * at no cost (tail: the file keeps its lines) stops reading then rather than fill the buffer. Its
   * events are then delivered soon after they are parsed, and die young in the heap instead of
   * being promoted while they wait. Whether a failing sink's buffer is filled anyway (so that the
   * source's other sinks keep going) is the pipeline's choice.
   */
  get backlogged(): boolean {
    return (
      !this.#diskMode &&
      (this.#pendingEvents >= 2 * this.#batch.maxEvents || this.#pendingBytes >= 2 * this.#batch.maxBytes)
    );
  }

  /**
   * Resolves when the buffer has room (at once if it has now, or once the runner is stopped); with
   * `readAhead: false`, also only once the sink is not `backlogged`; with a function, once it says
   * the source need not hold back (asked again whenever the buffer or the sink's health changes,
   * and on recheck()).
   */
  whenNotFull(opts: { readAhead: boolean } | (() => boolean) = { readAhead: true }): Promise<void> {
    const holds = typeof opts === 'function' ? opts : () => this.holdsBack(opts.readAhead);
    if (this.#stopped || !holds()) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push({ holds, resolve }));
  }

  /** Asks the sources waiting for room again (another sink's health changed what they wait for). */
  recheck(): void {
    this.#roomMaybe();
  }

  /** Whether a source should stop reading: the buffer is full, or (readAhead false) the sink is backlogged. */
  holdsBack(readAhead: boolean): boolean {
    return this.full || (!readAhead && this.backlogged);
  }

  /** Memory: bytes of the items pushed and not yet acknowledged. Disk: bytes on disk plus those waiting for room. */
  get bufferedBytes(): number {
    if (this.#diskMode) return (this.#disk?.bytes ?? 0) + this.#overflowBytes;
    return this.#memBytes;
  }

  /**
   * Clock time of the first failure of the current run of failures; undefined when the last
   * attempt succeeded. A run that was going on when the process last stopped counts from its first
   * failure, once there is something to send again (a sink with nothing to send shows no failure).
   */
  get failingSince(): number | undefined {
    if (this.#failingSince !== undefined) return this.#failingSince;
    if (this.#carriedSince !== undefined && !this.#empty()) return this.#carriedSince;
    return undefined;
  }

  /** Why the last attempt failed, while failingSince is set. */
  get lastFailure(): string | undefined {
    return this.failingSince === undefined ? undefined : this.#lastFailure;
  }

  /** Sends the partial batch now and keeps delivering until nothing is left or the clock passes deadline. */
  async drain(deadline: number): Promise<void> {
    if (!this.#started || this.#stopped || this.#empty()) return;
    this.#draining = true;
    this.#kick();
    let timer: TimerHandle | undefined;
    await new Promise<void>((resolve) => {
      this.#drained.push(resolve);
      timer = this.#timing.clock.setTimeout(resolve, deadline - this.#timing.clock.now());
    });
    timer?.cancel();
    this.#draining = false;
  }

  /** Aborts the attempt in flight and closes the driver and the disk buffer; unacknowledged memory items stay unacknowledged. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#inflight?.abort(new PillionError('PILLION_ERR_LOGS_DELIVERY', 'the sink is stopping'));
    this.#backoffTimer?.cancel();
    this.#backoffDone?.();
    this.#ageTimer?.cancel();
    this.#diskRetry?.cancel();
    this.#kick();
    await this.#loop;
    try {
      await this.#driver.close();
    } catch (err) {
      this.#log.warn({ err }, 'closing the sink failed');
    }
    this.#flushAcks();
    this.#disk?.close();
    this.#deadLetters?.close();
    for (const w of this.#waiting.splice(0)) w.resolve();
    for (const r of this.#drained.splice(0)) r();
  }

  // --- the delivery loop ----------------------------------------------------------------------

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let batch: Batch | undefined;
      try {
        batch = this.#ready() ? this.#cut() : undefined;
      } catch (err) {
        // The disk buffer could not be read: try again shortly rather than end the loop.
        this.#log.error(
          { code: 'PILLION_ERR_LOGS_DATA_DIR', err },
          `sink "${this.#name}" cannot read its disk buffer`,
        );
        await this.#pause(DISK_RETRY_MS);
        continue;
      }
      if (!batch) {
        this.#checkDrained();
        this.#armAge();
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      this.#ageTimer?.cancel();
      this.#ageTimer = undefined;
      if (!(await this.#deliver(batch))) return;
      this.#finish(batch);
    }
  }

  #kick(): void {
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      wake();
    }
  }

  /** Counts newly pushed events toward the batch triggers and wakes the loop when a batch is due. */
  #pending(n: number, bytes: number): void {
    const first = this.#pendingEvents === 0;
    this.#pendingEvents += n;
    this.#pendingBytes += bytes;
    if (first) this.#pendingSince ??= this.#timing.clock.now();
    if (
      this.#wake &&
      (first || this.#pendingEvents >= this.#batch.maxEvents || this.#pendingBytes >= this.#batch.maxBytes)
    )
      this.#kick();
  }

  #ready(): boolean {
    if (this.#diskMode) {
      if (!this.#disk?.hasUnread) return false;
      if (this.#backlog || this.#pendingSince === undefined) return true;
    } else if (this.#pendingEvents <= 0) return false;
    return (
      this.#draining ||
      this.#pendingEvents >= this.#batch.maxEvents ||
      this.#pendingBytes >= this.#batch.maxBytes ||
      this.#timing.clock.now() - this.#pendingSince! >= this.#batch.maxAge
    );
  }

  #armAge(): void {
    this.#ageTimer?.cancel();
    this.#ageTimer = undefined;
    if (this.#pendingSince === undefined || this.#stopped) return;
    const wait = this.#pendingSince + this.#batch.maxAge - this.#timing.clock.now();
    this.#ageTimer = this.#timing.clock.setTimeout(() => {
      this.#ageTimer = undefined;
      this.#kick();
    }, wait);
  }

  #cut(): Batch | undefined {
    return this.#diskMode ? this.#cutDisk() : this.#cutMemory();
  }

  #cutMemory(): Batch | undefined {
    const maxEvents = this.#batch.maxEvents;
    const maxBytes = this.#batch.maxBytes;
    const entries: Entry[] = [];
    const counts: number[] = [];
    let count = 0;
    let bytes = 0;
    const firstEi = this.#ei;
    while (this.#qi < this.#queue.length && count < maxEvents && bytes < maxBytes) {
      const e = this.#queue[this.#qi]!;
      const n = e.item.events.length;
      if (this.#ei >= n) {
        this.#qi++;
        this.#ei = 0;
        continue;
      }
      const per = e.item.bytes / n;
      // Only the first item of a batch may be split: an item is acknowledged when all of it is
      // delivered, so a batch that ends inside an item would be sent again in part after a crash.
      if (count > 0 && (n - this.#ei > maxEvents - count || per * (n - this.#ei) > maxBytes - bytes)) break;
      let take = Math.min(n - this.#ei, maxEvents - count);
      if (per > 0) {
        const fit = Math.floor((maxBytes - bytes) / per + 1e-9);
        take = Math.min(take, count === 0 ? Math.max(1, fit) : fit);
      }
      if (take <= 0) break;
      entries.push(e);
      counts.push(take);
      count += take;
      bytes += per * take;
      this.#ei += take;
      if (this.#ei >= n) {
        this.#qi++;
        this.#ei = 0;
      }
    }
    if (count === 0) return undefined;
    let events: LogEvent[];
    if (entries.length === 1 && firstEi === 0 && counts[0] === entries[0]!.item.events.length) {
      events = entries[0]!.item.events; // a whole item: send its own array, no copy
    } else {
      events = new Array<LogEvent>(count);
      let k = 0;
      let from = firstEi;
      for (let i = 0; i < entries.length; i++) {
        const src = entries[i]!.item.events;
        const to = from + counts[i]!;
        for (let j = from; j < to; j++) events[k++] = src[j]!;
        from = 0;
      }
    }
    this.#pendingEvents -= count;
    this.#pendingBytes -= bytes;
    // The oldest unsent event now belongs to the item at the cursor.
    while (this.#qi < this.#queue.length && this.#ei >= this.#queue[this.#qi]!.item.events.length) {
      this.#qi++;
      this.#ei = 0;
    }
    if (this.#pendingEvents <= 0 || this.#qi >= this.#queue.length) {
      this.#pendingEvents = 0;
      this.#pendingBytes = 0;
      this.#pendingSince = undefined;
    } else {
      this.#pendingSince = this.#queue[this.#qi]!.at;
    }
    this.#roomMaybe();
    return { events, bytes, entries, counts, end: undefined };
  }

  #cutDisk(): Batch | undefined {
    const disk = this.#disk!;
    for (;;) {
      const read = disk.read(this.#batch.maxEvents, this.#batch.maxBytes);
      if (!disk.hasUnread) {
        this.#backlog = false;
        this.#pendingEvents = 0;
        this.#pendingBytes = 0;
        this.#pendingSince = undefined;
      } else if (read) {
        // Counts are estimates (a backlog from before a restart is not in them); the age of what
        // is left is kept, so a remainder is never sent later than its oldest event is due.
        this.#pendingEvents = Math.max(0, this.#pendingEvents - read.events.length);
        this.#pendingBytes = Math.max(0, this.#pendingBytes - read.bytes);
      }
      if (!read) return undefined;
      if (read.events.length > 0)
        return { events: read.events, bytes: read.bytes, entries: [], counts: [], end: read.end };
      // Only corrupt records were there: move past them.
      this.#ackDisk(read.end);
    }
  }

  /** Delivers one batch until done (true) or the runner stops (false). */
  async #deliver(batch: Batch): Promise<boolean> {
    let events = batch.events;
    let bytes = batch.bytes;
    let attempt = 0;
    for (;;) {
      const outcome = await this.#attempt(events);
      if (this.#stopped) return false;
      const n = events.length;
      if (outcome.kind === 'ok') {
        this.#stats.events.value += n;
        this.#stats.bytes.value += bytes;
        this.#succeeded();
        return true;
      }
      if (outcome.kind === 'failed') {
        this.#stats.failures.value++;
        if (!outcome.retry && !this.#deadLetter().write(events, outcome.reason)) {
          // The dead-letter file cannot be written (a full or read-only disk): keep the batch and
          // try again after a back-off rather than acknowledge events that went nowhere.
          this.#stats.retries.value++;
          this.#failing(`${outcome.reason}; and the dead-letter file cannot be written`);
          this.#failed(
            `${outcome.reason}; and the dead-letter file cannot be written`,
            outcome.status,
            n,
            'retrying',
          );
        } else if (!outcome.retry) {
          this.#stats.deadLettered.value += n;
          this.#failed(outcome.reason, outcome.status, n, 'dead-lettered');
          // The destination answered, so the sink is not down: a later retry-able failure starts a new run.
          this.#succeeded();
          return true;
        }
        this.#stats.retries.value++;
        this.#failing(outcome.reason);
        this.#failed(outcome.reason, outcome.status, n, 'retrying');
      } else {
        const retry = outcome.retry;
        const reject = outcome.reject;
        let keep = retry;
        if (reject.length > 0) {
          if (this.#deadLetter().writeEach(reject)) this.#stats.deadLettered.value += reject.length;
          // Not written to the dead-letter file: they go round again with the retried ones.
          else keep = retry.concat(reject.map((r) => r.event));
        }
        const stored = Math.max(0, n - retry.length - reject.length);
        this.#stats.events.value += stored;
        this.#stats.bytes.value += (bytes * stored) / n;
        if (keep.length === 0) {
          if (reject.length > 0)
            this.#failed(reject[0]!.reason, undefined, reject.length, 'dead-lettered (partial)');
          this.#succeeded();
          return true;
        }
        this.#stats.failures.value++;
        this.#stats.retries.value++;
        this.#failing(`${keep.length} of ${n} events were not stored`);
        this.#failed(`${keep.length} of ${n} events were not stored`, undefined, keep.length, 'retrying');
        bytes = (bytes * keep.length) / n;
        events = keep;
      }
      await this.#backoff(attempt++);
      if (this.#stopped) return false;
    }
  }

  /** One send, bounded by retry.timeout, cut short by stop(). */
  async #attempt(events: LogEvent[]): Promise<SendOutcome> {
    const ac = new AbortController();
    this.#inflight = ac;
    const timeout = this.#retry.timeout;
    let timedOut = false;
    const aborted = new Promise<SendOutcome>((resolve) =>
      ac.signal.addEventListener(
        'abort',
        () =>
          resolve({
            kind: 'failed',
            retry: true,
            reason: timedOut ? `no answer within ${timeout} ms` : 'stopped',
          }),
        { once: true },
      ),
    );
    const timer = this.#timing.clock.setTimeout(() => {
      timedOut = true;
      ac.abort(new PillionError('PILLION_ERR_LOGS_DELIVERY', `no answer within ${timeout} ms`));
    }, timeout);
    try {
      let sent: Promise<SendOutcome>;
      try {
        sent = this.#driver.send(events, ac.signal);
      } catch (err) {
        sent = Promise.reject(err);
      }
      return await Promise.race([
        sent.catch((err: unknown): SendOutcome => ({
          kind: 'failed',
          retry: true,
          reason: err instanceof Error ? err.message : String(err),
        })),
        aborted,
      ]);
    } finally {
      timer.cancel();
      this.#inflight = undefined;
    }
  }

  #backoff(attempt: number): Promise<void> {
    return this.#pause(retryDelay(attempt, this.#retry, this.#timing.random));
  }

  /** Waits on the clock; stop() ends the wait early. */
  #pause(delay: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#backoffTimer = undefined;
        this.#backoffDone = undefined;
        resolve();
      };
      this.#backoffDone = done;
      this.#backoffTimer = this.#timing.clock.setTimeout(done, delay);
    });
  }

  #finish(batch: Batch): void {
    if (batch.end) {
      this.#ackDisk(batch.end);
    } else {
      for (let i = 0; i < batch.entries.length; i++) batch.entries[i]!.done += batch.counts[i]!;
      this.#ackMemory();
    }
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (this.#drained.length > 0 && this.#empty()) for (const r of this.#drained.splice(0)) r();
  }

  #empty(): boolean {
    if (this.#diskMode) return this.#overflow.length === 0 && !(this.#disk?.hasUnacked ?? false);
    return this.#head >= this.#queue.length;
  }

  // --- acknowledgements -----------------------------------------------------------------------

  #ackMemory(): void {
    let acked = false;
    while (this.#head < this.#queue.length) {
      const e = this.#queue[this.#head]!;
      if (e.done < e.item.events.length) break;
      this.#queue[this.#head] = undefined;
      this.#head++;
      this.#memBytes -= e.item.cost ?? e.item.bytes;
      acked = true;
      this.#callAck(e.item);
    }
    if (this.#qi < this.#head) {
      // The cursor sat on an item with no events, now acknowledged.
      this.#qi = this.#head;
      this.#ei = 0;
    }
    if (this.#head >= this.#queue.length && this.#qi >= this.#queue.length) {
      this.#queue = [];
      this.#head = this.#qi = this.#ei = 0;
    } else if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#queue.length) {
      const cut = Math.min(this.#head, this.#qi);
      this.#queue.splice(0, cut);
      this.#head -= cut;
      this.#qi -= cut;
    }
    if (acked) {
      if (this.#memBytes < 1e-6) this.#memBytes = 0;
      this.#gauge();
      this.#roomMaybe();
      this.#checkDrained();
    }
  }

  #ackDisk(end: BufferPosition): void {
    try {
      this.#disk!.ack(end);
    } catch (err) {
      this.#log.error(
        { code: 'PILLION_ERR_LOGS_DATA_DIR', err },
        'cannot record the disk buffer position; events may be delivered again after a restart',
      );
    }
    this.#flushOverflow();
    this.#gauge();
    this.#roomMaybe();
  }

  #callAck(item: SinkItem): void {
    try {
      this.#onAck(item);
    } catch (err) {
      this.#log.error({ err }, 'acknowledging an item failed');
    }
  }

  #queueAck(item: SinkItem): void {
    this.#toAck.push(item);
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    queueMicrotask(() => this.#flushAcks());
  }

  #flushAcks(): void {
    this.#ackScheduled = false;
    const items = this.#toAck;
    if (items.length === 0) return;
    this.#toAck = [];
    for (const item of items) this.#callAck(item);
  }

  #roomMaybe(): void {
    if (this.#waiting.length === 0) return;
    const still: Waiter[] = [];
    const go: Waiter[] = [];
    for (const w of this.#waiting) (w.holds() ? still : go).push(w);
    this.#waiting = still;
    for (const w of go) w.resolve();
  }

  #gauge(): void {
    this.#stats.bufferBytes.value = this.bufferedBytes;
  }

  // --- the disk buffer ------------------------------------------------------------------------

  /** Writes an item to the disk buffer; false when it must wait (full, not open, or an I/O error). */
  #write(item: SinkItem): boolean {
    const disk = this.#disk;
    if (!disk || this.#stopped) return false;
    const n = item.events.length;
    if (n === 0) return true;
    let ok: boolean;
    try {
      ok = disk.append(item.events, item.bytes);
    } catch (err) {
      this.#log.error(
        { code: 'PILLION_ERR_LOGS_DATA_DIR', err },
        'cannot write to the disk buffer; events wait in memory',
      );
      this.#diskRetry ??= this.#timing.clock.setTimeout(() => {
        this.#diskRetry = undefined;
        this.#flushOverflow();
        this.#gauge();
        this.#roomMaybe();
      }, DISK_RETRY_MS);
      return false;
    }
    if (ok) this.#pending(n, item.bytes);
    return ok;
  }

  #flushOverflow(): void {
    let k = 0;
    while (k < this.#overflow.length && this.#write(this.#overflow[k]!)) {
      this.#overflowBytes -= this.#overflow[k]!.cost ?? this.#overflow[k]!.bytes;
      this.#queueAck(this.#overflow[k]!);
      k++;
    }
    if (k > 0) this.#overflow.splice(0, k);
    if (this.#overflow.length === 0) this.#overflowBytes = 0;
  }

  // --- failures -------------------------------------------------------------------------------

  #deadLetter(): DeadLetterFile {
    this.#deadLetters ??= new DeadLetterFile({
      dataDir: this.#dataDir,
      sink: this.#name,
      clock: this.#timing.clock,
      logger: this.#log,
    });
    return this.#deadLetters;
  }

  /** Logs a failure: the first at once, then at most one line a minute (the others are counted). */
  #failed(reason: string, status: number | undefined, events: number, action: string): void {
    // A sink that started failing no longer holds its sources back at one batch.
    this.#roomMaybe();
    const now = this.#timing.clock.now();
    if (this.#lastLogAt !== undefined && now - this.#lastLogAt < LOG_INTERVAL_MS) {
      this.#suppressed++;
      return;
    }
    this.#log.warn(
      {
        code: 'PILLION_ERR_LOGS_DELIVERY',
        reason,
        status,
        events,
        action,
        failingSince: this.#failingSince,
        suppressed: this.#suppressed,
      },
      `sink "${this.#name}" could not deliver ${events} events (${action}): ${reason}`,
    );
    this.#lastLogAt = now;
    this.#suppressed = 0;
    if (this.#failingSince !== undefined) this.#loggedThisRun = true;
  }

  /** A retry-able failure: starts (or continues) the run of failures, remembered in the data directory. */
  #failing(reason: string): void {
    this.#lastFailure = reason;
    if (this.#failingSince !== undefined) return;
    this.#failingSince = this.#carriedSince ?? this.#timing.clock.now();
    this.#carriedSince = undefined;
    this.#healthFile.save({ failingSince: this.#failingSince, reason });
    this.#onHealthChange?.();
  }

  #succeeded(): void {
    if (this.#carriedSince !== undefined) {
      this.#carriedSince = undefined;
      this.#healthFile.save(undefined);
      this.#onHealthChange?.();
    }
    const since = this.#failingSince;
    if (since === undefined) return;
    this.#failingSince = undefined;
    this.#lastFailure = undefined;
    this.#healthFile.save(undefined);
    this.#onHealthChange?.();
    this.#roomMaybe();
    if (this.#loggedThisRun)
      this.#log.info(
        { failedForMs: this.#timing.clock.now() - since, suppressed: this.#suppressed },
        `sink "${this.#name}" is delivering again`,
      );
    this.#loggedThisRun = false;
  }
}
