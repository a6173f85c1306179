// The proxy's access log: one JSON line per request with the field names of Envoy's default JSON
// access log, batched per event-loop turn and written to stdout or a size-rotated file.

import type { FileHandle } from 'node:fs/promises';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { systemClock, type Clock, type TimerHandle } from '../lib/clock.js';

export interface AccessLogSettings {
  /** 'stdout', or a file path. */
  path: string;
  /** Bytes; a file is rotated when the next lines would make it larger. */
  maxSize: number;
  /** Rotated files kept: path.1 … path.N. */
  maxFiles: number;
  /** Log probers' requests too; by default they are only counted (onHealthCheck). */
  healthChecks?: boolean;
}

/** User-Agents of probers: the kubelet (and pillion pod), cloud load balancers, Envoy, Consul, pillion's app check. */
const PROBERS = [
  'kube-probe/',
  'ELB-HealthChecker/',
  'GoogleHC/',
  'Envoy/HC',
  'Consul Health Check',
  'pillion-health/',
];

/** Whether a request with this User-Agent is a health check, which the access log leaves out by default. */
export function isHealthCheck(userAgent: string | null | undefined): boolean {
  if (typeof userAgent !== 'string') return false;
  for (let i = 0; i < PROBERS.length; i++) if (userAgent.startsWith(PROBERS[i]!)) return true;
  return false;
}

/** One record per request, named as Envoy's default JSON access log names them. */
export interface AccessRecord {
  /** Epoch ms; written as ISO-8601 with milliseconds. */
  start_time: number;
  method: string;
  path: string;
  /** 'HTTP/1.1', 'HTTP/1.0' or 'HTTP/2'. */
  protocol: string;
  /** 0 when no response was sent (the client went away). */
  response_code: number;
  /** Envoy-style short codes ('UF', 'UT', 'DC', 'NR', ...), '-' when none. */
  response_flags: string;
  bytes_received: number;
  bytes_sent: number;
  /** ms, may be fractional; written with at most 3 decimals. */
  duration: number;
  /** ms to the upstream's response head. */
  upstream_service_time: number | null;
  /** 'ip:port' */
  upstream_host: string | null;
  x_forwarded_for: string | null;
  user_agent: string | null;
  request_id: string | null;
  authority: string | null;
  /** 'ip:port' */
  downstream_remote_address: string;
  listener: string;
  route: string | null;
  /** The peer's principal when mutual TLS verified it (Envoy's %DOWNSTREAM_PEER_URI_SAN% without spiffe://); left out otherwise. */
  downstream_peer_principal?: string | undefined;
  /** A PILLION_ERR_* code when the request failed; the key is left out otherwise. */
  error?: string;
  /**
   * Why a request filter answered or what it found, as Envoy's %RESPONSE_CODE_DETAILS% names it
   * (`jwt_authn_access_denied{expired}`, `rbac_access_denied_matched_policy[deny-admin]`,
   * `local_rate_limited{per-client}`, `jwt_ok`); never a token. Left out when no filter ran.
   */
  response_code_details?: string;
  /** Attempts sent upstream, on routes with retries; left out otherwise. */
  upstream_attempts?: number;
  /**
   * On routes with retries, what each failed attempt got, comma-separated: UF (connect failure),
   * UC (reset before a response), UT (per-try timeout) or the status retried on; '' when none failed.
   */
  attempt_flags?: string;
}

export interface AccessLogDeps {
  onError?: (err: Error) => void;
  /** Told of each health check left out of the log, to count it. */
  onHealthCheck?: (rec: AccessRecord) => void;
  /** Where 'stdout' lines go; process.stdout when absent. The stream is never ended by close(). */
  stream?: Writable;
  /** Paces the check for an externally rotated file and the retry after a failed write. */
  clock?: Clock;
}

/** A batch is handed to the destination once it reaches this size, even within one turn. */
const BATCH_BYTES = 64 * 1024;
/** The most that batches sealed while a write was in flight are merged into. */
const WRITE_BYTES = 1024 * 1024;
/** Bytes not yet accepted by the destination beyond which new lines are dropped. */
const MAX_PENDING = 8 * 1024 * 1024;
// Lines are accepted again only once the backlog is half gone, so a slow destination produces one
// gap in the log rather than every other line missing.
const RESUME_BELOW = MAX_PENDING / 2;
/** How often a file's identity is compared with the path, to follow an external logrotate. */
const REOPEN_CHECK_MS = 1000;
const RETRY_MS = 1000;
/** The largest epoch ms a Date can hold; toISOString throws beyond it. */
const MAX_DATE_MS = 8.64e15;

/** Lines sealed into one buffer; off is how much of it has reached the destination. */
interface Batch {
  buf: Buffer;
  off: number;
  lines: number;
  seq: number;
}

interface Sink {
  /** A description for error messages. */
  readonly name: string;
  /** Set once the destination can never accept bytes again; pending batches are then dropped. */
  readonly broken: boolean;
  open(): Promise<void>;
  /** Resolves when the destination is ready for more; advances batch.off as bytes land. */
  write(batch: Batch): Promise<void>;
  /** Resolves when everything handed over has left the process. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export class AccessLog {
  #sink: Sink;
  #clock: Clock;
  #onError: (err: Error) => void;

  #batch = '';
  // UTF-16 units, not bytes: exact byte counts come once per batch from Buffer.from, and the
  // difference (at most 3x of one 64 KiB batch) does not matter for either threshold.
  #batchChars = 0;
  #batchLines = 0;
  #turnScheduled = false;
  #queue: Batch[] = [];
  /** Bytes written but not yet accepted by the destination: the open batch plus the queue. */
  #pending = 0;
  #sealedSeq = 0;
  #doneSeq = 0;
  #waiters: { seq: number; resolve: () => void }[] = [];

  #pumping = false;
  #pumpDone: Promise<void> = Promise.resolve();
  #failing = false;
  #retryTimer: TimerHandle | null = null;
  #wake: (() => void) | null = null;

  #dropping = false;
  #dropped = 0;
  #closing = false;
  #closed: Promise<void> | null = null;

  // Bound once so that scheduling a turn allocates no closure.
  #onTurn = (): void => {
    this.#turnScheduled = false;
    this.#seal();
  };

  #skipHealthChecks: boolean;
  #onHealthCheck: ((rec: AccessRecord) => void) | undefined;

  private constructor(
    sink: Sink,
    clock: Clock,
    onError: (err: Error) => void,
    health: { skip: boolean; onHealthCheck: ((rec: AccessRecord) => void) | undefined },
  ) {
    this.#sink = sink;
    this.#clock = clock;
    this.#onError = onError;
    this.#skipHealthChecks = health.skip;
    this.#onHealthCheck = health.onHealthCheck;
    this.#pumping = true;
    this.#pumpDone = this.#pump(true);
  }

  /** Starts writing to settings.path; a file that cannot be opened is reported through onError. */
  static open(settings: AccessLogSettings, deps: AccessLogDeps = {}): AccessLog {
    const clock = deps.clock ?? systemClock;
    const onError = deps.onError ?? ((err: Error) => process.emitWarning(err));
    const sink: Sink =
      settings.path === 'stdout'
        ? new StreamSink(deps.stream ?? process.stdout, deps.stream ? 'stream' : 'stdout')
        : new FileSink(settings.path, settings.maxSize, settings.maxFiles, clock);
    const log = new AccessLog(sink, clock, onError, {
      skip: settings.healthChecks !== true,
      onHealthCheck: deps.onHealthCheck,
    });
    if (sink instanceof StreamSink) sink.onBroken = (err) => log.#fail(err);
    return log;
  }

  /** Lines dropped because the destination fell more than 8 MiB behind, or could no longer be written. */
  get dropped(): number {
    return this.#dropped;
  }

  write(rec: AccessRecord): void {
    if (this.#closing) return;
    if (this.#skipHealthChecks && isHealthCheck(rec.user_agent)) {
      this.#onHealthCheck?.(rec);
      return;
    }
    if (this.#dropping) {
      if (this.#pending > RESUME_BELOW) {
        this.#dropped++;
        return;
      }
      this.#dropping = false;
    }
    if (this.#pending >= MAX_PENDING) {
      this.#dropping = true;
      this.#dropped++;
      this.#report(
        new Error(
          `access log ${this.#sink.name}: the destination is not keeping up; dropping lines until the backlog drains`,
        ),
      );
      return;
    }
    const line = formatLine(rec);
    this.#batch += line;
    this.#batchChars += line.length;
    this.#batchLines++;
    this.#pending += line.length;
    if (this.#batchChars >= BATCH_BYTES) this.#seal();
    else if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      // Not unref'd: it lasts one turn, and lines written just before exit should still go out.
      setImmediate(this.#onTurn);
    }
  }

  /** Resolves once every line written so far has reached the file or left through the stream. */
  async flush(): Promise<void> {
    this.#seal();
    const seq = this.#sealedSeq;
    if (this.#doneSeq < seq) await new Promise<void>((resolve) => this.#waiters.push({ seq, resolve }));
    await this.#sink.settled();
  }

  /** Flushes and releases the file. A failing destination is tried once more, then its lines are dropped. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#seal();
    this.#retryTimer?.cancel();
    this.#wake?.();
    await this.#pumpDone;
    await this.#sink.settled();
    await this.#sink.close();
  }

  #seal(): void {
    if (this.#batchLines === 0) return;
    const buf = Buffer.from(this.#batch, 'utf8');
    this.#pending += buf.length - this.#batchChars;
    this.#queue.push({ buf, off: 0, lines: this.#batchLines, seq: ++this.#sealedSeq });
    this.#batch = '';
    this.#batchChars = 0;
    this.#batchLines = 0;
    if (!this.#pumping) {
      this.#pumping = true;
      this.#pumpDone = this.#pump(false);
    }
  }

  // The only writer to the sink, so batches land in order and rotation never interleaves a write.
  async #pump(openFirst: boolean): Promise<void> {
    try {
      if (openFirst) {
        try {
          await this.#sink.open();
        } catch (err) {
          this.#fail(err);
        }
      }
      for (;;) {
        const batch = this.#coalesce();
        if (!batch) break;
        try {
          await this.#sink.write(batch);
        } catch (err) {
          this.#fail(err);
          if (this.#closing || this.#sink.broken) {
            this.#dropped += batch.lines;
            this.#done(batch);
          } else await this.#retryDelay();
          continue;
        }
        // A stream that broke while this batch was in flight stays failed: no second report.
        if (!this.#sink.broken) this.#failing = false;
        this.#done(batch);
      }
    } finally {
      this.#pumping = false;
    }
  }

  // While one write was in flight, a busy turn may have sealed several batches; they go out in one
  // write, or a destination that completes one write per loop iteration (a file on the thread
  // pool, a pipe) would be held to 64 KiB per iteration.
  #coalesce(): Batch | undefined {
    const head = this.#queue[0];
    if (!head || head.off > 0 || this.#queue.length === 1) return head;
    let n = 1;
    let bytes = head.buf.length;
    while (n < this.#queue.length && bytes + this.#queue[n]!.buf.length <= WRITE_BYTES)
      bytes += this.#queue[n++]!.buf.length;
    if (n === 1) return head;
    const parts = this.#queue.splice(0, n);
    const merged: Batch = {
      buf: Buffer.concat(
        parts.map((b) => b.buf),
        bytes,
      ),
      off: 0,
      lines: parts.reduce((sum, b) => sum + b.lines, 0),
      seq: parts[n - 1]!.seq,
    };
    this.#queue.unshift(merged);
    return merged;
  }

  #done(batch: Batch): void {
    this.#queue.shift();
    this.#pending -= batch.buf.length;
    this.#doneSeq = batch.seq;
    while (this.#waiters.length > 0 && this.#waiters[0]!.seq <= batch.seq) this.#waiters.shift()!.resolve();
  }

  #retryDelay(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#retryTimer = this.#clock.setTimeout(resolve, RETRY_MS);
    }).finally(() => {
      this.#wake = null;
      this.#retryTimer = null;
    });
  }

  // One report per failure episode: a full disk retried every second must not flood the caller.
  #fail(err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#report(err instanceof Error ? err : new Error(String(err)));
  }

  // A throwing onError must neither reach the request that wrote a line nor stop the writer.
  #report(err: Error): void {
    try {
      this.#onError(err);
    } catch {
      // nothing left to tell
    }
  }
}

// Keys with their separators, so a line is a fixed sequence of concatenations.
function formatLine(r: AccessRecord): string {
  return (
    '{"start_time":' +
    isoTime(r.start_time) +
    ',"method":' +
    str(r.method) +
    ',"path":' +
    str(r.path) +
    ',"protocol":' +
    str(r.protocol) +
    ',"response_code":' +
    num(r.response_code) +
    ',"response_flags":' +
    str(r.response_flags) +
    ',"bytes_received":' +
    num(r.bytes_received) +
    ',"bytes_sent":' +
    num(r.bytes_sent) +
    ',"duration":' +
    millis(r.duration) +
    ',"upstream_service_time":' +
    millis(r.upstream_service_time) +
    ',"upstream_host":' +
    str(r.upstream_host) +
    ',"x_forwarded_for":' +
    str(r.x_forwarded_for) +
    ',"user_agent":' +
    str(r.user_agent) +
    ',"request_id":' +
    str(r.request_id) +
    ',"authority":' +
    str(r.authority) +
    ',"downstream_remote_address":' +
    str(r.downstream_remote_address) +
    ',"listener":' +
    str(r.listener) +
    ',"route":' +
    str(r.route) +
    (r.downstream_peer_principal === undefined
      ? ''
      : ',"downstream_peer_principal":' + str(r.downstream_peer_principal)) +
    (r.error === undefined ? '' : ',"error":' + str(r.error)) +
    (r.upstream_attempts === undefined
      ? ''
      : ',"upstream_attempts":' +
        num(r.upstream_attempts) +
        ',"attempt_flags":' +
        str(r.attempt_flags ?? '')) +
    (r.response_code_details === undefined
      ? '}\n'
      : ',"response_code_details":' + str(r.response_code_details) + '}\n')
  );
}

// Most values are printable ASCII without quotes or backslashes and need no escaping; testing for
// that halves the cost of a line. Everything else goes through JSON.stringify, which escapes quotes,
// backslashes and control characters and writes lone surrogates as \ud800-style escapes, so the
// line stays valid UTF-8.
const PLAIN = /^[ !#-[\]-~]*$/;

// A missing value must not become `undefined`, which is not JSON.
function str(s: string | null | undefined): string {
  if (s == null) return 'null';
  return PLAIN.test(s) ? '"' + s + '"' : JSON.stringify(s);
}

// NaN and Infinity are not JSON.
function num(n: number | null | undefined): string {
  return typeof n === 'number' && Number.isFinite(n) ? String(n) : 'null';
}

function millis(n: number | null | undefined): string {
  return typeof n === 'number' && Number.isFinite(n) ? String(Math.round(n * 1000) / 1000) : 'null';
}

// Formatting a Date costs more than the rest of the line; requests that start within the same second
// share everything up to the milliseconds. A pure memo, so one per process is enough.
let isoSecond = NaN;
let isoPrefix = '';

function isoTime(ms: number): string {
  if (!(ms >= 0 && ms <= MAX_DATE_MS))
    return Number.isFinite(ms) && ms >= -MAX_DATE_MS ? '"' + new Date(ms).toISOString() + '"' : 'null';
  // Date drops the fraction of a millisecond the same way.
  const whole = Math.floor(ms);
  const milli = whole % 1000;
  const second = whole - milli;
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = '"' + new Date(second).toISOString().slice(0, -4);
  }
  return isoPrefix + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli + 'Z"';
}

/** stdout, or a stream given by the caller: backpressure through write()'s return value and 'drain'. */
class StreamSink implements Sink {
  readonly name: string;
  onBroken: ((err: Error) => void) | null = null;
  #stream: Writable;
  #broken: Error | null = null;
  #last: Promise<void> = Promise.resolve();
  // Waits released when the stream errors or closes, so nothing waits forever on a stream that is
  // gone. A set rather than Promise.race against one never-settling promise, which would keep a
  // reaction per wait for the life of the process.
  #waits = new Set<() => void>();
  #onError = (err: Error): void => {
    this.#markBroken(new Error(`access log ${this.name}: ${err.message}`, { cause: err }));
  };
  #onClose = (): void => {
    this.#markBroken(new Error(`access log ${this.name}: the stream was closed`));
  };

  constructor(stream: Writable, name: string) {
    this.#stream = stream;
    this.name = name;
    // Without a listener an EPIPE on stdout would end the whole process over a log line.
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
  }

  get broken(): boolean {
    return this.#broken !== null;
  }

  async open(): Promise<void> {}

  async write(batch: Batch): Promise<void> {
    if (!this.#broken && (this.#stream.destroyed || this.#stream.writableEnded))
      this.#markBroken(new Error(`access log ${this.name}: the stream was ended`));
    if (this.#broken) throw this.#broken;
    let ok = true;
    this.#last = new Promise<void>((resolve) => {
      // An error here is also emitted as 'error', where it is reported.
      ok = this.#stream.write(batch.buf, () => resolve());
    });
    batch.off = batch.buf.length;
    if (ok) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#stream.removeListener('drain', done);
        this.#waits.delete(done);
        resolve();
      };
      this.#stream.on('drain', done);
      this.#waits.add(done);
    });
  }

  settled(): Promise<void> {
    if (this.#broken) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#waits.delete(done);
        resolve();
      };
      this.#waits.add(done);
      void this.#last.then(done);
    });
  }

  async close(): Promise<void> {
    this.#stream.removeListener('error', this.#onError);
    this.#stream.removeListener('close', this.#onClose);
  }

  #markBroken(err: Error): void {
    if (this.#broken) return;
    this.#broken = err;
    for (const done of [...this.#waits]) done();
    this.onBroken?.(err);
  }
}

/** An append-mode file rotated by size, following an external logrotate that moves it away. */
class FileSink implements Sink {
  readonly name: string;
  readonly broken = false;
  #path: string;
  #maxSize: number;
  #maxFiles: number;
  #clock: Clock;
  #fh: FileHandle | null = null;
  #size = 0;
  #dev = 0n;
  #ino = 0n;
  #checkedAt = 0;

  constructor(path: string, maxSize: number, maxFiles: number, clock: Clock) {
    this.#path = path;
    this.name = path;
    this.#maxSize = maxSize;
    this.#maxFiles = maxFiles;
    this.#clock = clock;
  }

  async open(): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(this.#path, 'a', 0o640);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT' ? `directory ${dirname(this.#path)} does not exist` : (err as Error).message;
      throw new Error(`access log ${this.#path}: cannot open the file: ${why}`, { cause: err });
    }
    try {
      const st = await fh.stat({ bigint: true });
      this.#size = Number(st.size);
      this.#dev = st.dev;
      this.#ino = st.ino;
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.#fh = fh;
    this.#checkedAt = this.#clock.now();
  }

  async write(batch: Batch): Promise<void> {
    if (!this.#fh) await this.open();
    else if (this.#clock.now() - this.#checkedAt >= REOPEN_CHECK_MS) await this.#followExternalRotation();
    const buf = batch.buf;
    while (batch.off < buf.length) {
      let end = buf.length;
      if (this.#size + (end - batch.off) > this.#maxSize) {
        // Write the whole lines that still fit, rotate, and go on with the rest in a fresh file.
        const room = this.#maxSize - this.#size;
        const cut = room > 0 ? buf.lastIndexOf(10, batch.off + room - 1) : -1;
        if (cut >= batch.off) end = cut + 1;
        else if (this.#size > 0) {
          await this.#rotate();
          continue;
        } else {
          // One line larger than maxSize: it gets a file of its own rather than being cut or lost.
          const nl = buf.indexOf(10, batch.off);
          end = nl < 0 ? buf.length : nl + 1;
        }
      }
      await this.#writeRange(batch, end);
    }
  }

  async settled(): Promise<void> {}

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    await fh?.close();
  }

  async #writeRange(batch: Batch, end: number): Promise<void> {
    const fh = this.#fh!;
    while (batch.off < end) {
      const { bytesWritten } = await fh.write(batch.buf, batch.off, end - batch.off, null);
      batch.off += bytesWritten;
      this.#size += bytesWritten;
    }
  }

  // path.(N-1) → path.N … path → path.1; the rename onto path.N replaces the oldest kept file.
  async #rotate(): Promise<void> {
    await this.close();
    if (this.#maxFiles < 1) await ignoreMissing(unlink(this.#path));
    else {
      for (let i = this.#maxFiles - 1; i >= 1; i--)
        await ignoreMissing(rename(`${this.#path}.${i}`, `${this.#path}.${i + 1}`));
      await ignoreMissing(rename(this.#path, `${this.#path}.1`));
    }
    await this.open();
  }

  // A logrotate that renames or removes the file leaves the handle writing to an unlinked inode.
  async #followExternalRotation(): Promise<void> {
    this.#checkedAt = this.#clock.now();
    let replaced: boolean;
    try {
      const st = await stat(this.#path, { bigint: true });
      replaced = st.ino !== this.#ino || st.dev !== this.#dev;
    } catch (err) {
      replaced = (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
    if (!replaced) return;
    await this.close();
    await this.open();
  }
}

async function ignoreMissing(op: Promise<void>): Promise<void> {
  try {
    await op;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
