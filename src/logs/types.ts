// The contracts between the log role's stages: a source reads and frames records and hands chunks
// of events to the pipeline; transforms edit events in place; each sink batches, delivers and
// acknowledges. Checkpoints move only on acknowledgement (DESIGN.md, "log stage").

import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import type { Series } from '../metrics/index.js';
import type { AbandonReason, LossReason } from './loss.js';

/** One log event: the parsed record's fields. A record that could not be parsed is `{ message, parse_error }`. */
export type LogEvent = Record<string, unknown>;

/**
 * An event parsed from one JSON line may carry its text under this key (a symbol: JSON.stringify,
 * Object.keys and for-in do not see it), without the closing brace, plus the fields `enrich`
 * appended since: `text + '}'` is then exactly the JSON the event would be encoded as, up to
 * whitespace, key order and number spelling kept as the app wrote them. Sinks use it instead of
 * encoding the event again. Only the parser sets it, only for sources whose transforms append
 * fields or drop events (see transforms/appendsOnly), and whatever changes an event otherwise must
 * clear it (`dropRaw`).
 */
export const RAW: unique symbol = Symbol('pillion.raw');

type WithRaw = { [RAW]?: string | undefined };

/** The event's raw JSON text without its closing brace, when it still matches the event. */
export function rawOf(event: LogEvent): string | undefined {
  return (event as WithRaw)[RAW];
}

export function setRaw(event: LogEvent, open: string | undefined): void {
  (event as WithRaw)[RAW] = open;
}

/**
 * A lean event (see `lean` in parsers/json.ts) holds its JSON text and none of its fields yet: the
 * parser makes one only for a source whose transforms and sinks never read an event's fields
 * (sinks that send the text, transforms that only append; pipeline.ts decides). It takes about half
 * the heap of the parsed object beside its text, which is what a memory buffer and the catch-up
 * after an outage hold. `materialize` gives it its fields, and `dropRaw` does so before it drops the
 * text, so code that reads or edits fields need only call one of them first.
 */
const LEAN: unique symbol = Symbol('pillion.lean');

type WithLean = WithRaw & { [LEAN]?: true | undefined };

/** An event of JSON text alone, its fields not yet set: `open` is the text without its closing brace. */
export function leanEvent(open: string): LogEvent {
  const event: LogEvent = {};
  (event as WithLean)[RAW] = open;
  (event as WithLean)[LEAN] = true;
  return event;
}

/** Whether the event is lean: its fields are only in its raw text. */
export function isLean(event: LogEvent): boolean {
  return (event as WithLean)[LEAN] === true;
}

/**
 * Sets a lean event's fields from its text (which holds every field set on it since, see enrich),
 * in the text's order; the text is kept. Other events are left as they are.
 */
export function materialize(event: LogEvent): void {
  const e = event as WithLean;
  if (e[LEAN] !== true) return;
  const fields = JSON.parse(`${e[RAW]!}}`) as LogEvent;
  for (const k of Object.keys(event)) delete event[k];
  Object.assign(event, fields);
  e[LEAN] = undefined;
}

/** The event was changed in a way its raw text does not follow: sinks encode it anew. */
export function dropRaw(event: LogEvent): void {
  if ((event as WithRaw)[RAW] === undefined) return;
  materialize(event);
  (event as WithRaw)[RAW] = undefined;
}

/** The standard field names the stages agree on. */
export const FIELD = {
  /** The raw text of a record that was not parsed into fields (or had no parser). */
  message: 'message',
  /** Set (to the parser's reason) when a record failed to parse and was kept raw. */
  parseError: 'parse_error',
  /** Set to true when a record was longer than the source's maxLineBytes and was cut. */
  truncated: 'truncated',
  /** Set to true when a record held bytes that are not UTF-8 (replaced by U+FFFD). */
  invalidUtf8: 'invalid_utf8',
  /**
   * Set to true on a line handed over without its newline (its file stayed without one for
   * partialLineTimeout, or the source stopped), and on the rest of that line when it comes.
   */
  partial: 'partial',
  /** CRI and stdin: which stream a container line came from. */
  stream: 'stream',
  /** CRI: the container runtime's timestamp of the line. */
  time: 'time',
} as const;

/**
 * A run of events from one source. For a checkpointed source (tail) all events come from one
 * stream (one file) and each ends at or before endOffset; events are handed over in stream order.
 */
export interface Chunk {
  source: string;
  events: LogEvent[];
  /** Bytes the source read to make these events; buffers and metrics count these. */
  bytes: number;
  /** Checkpointed sources: the stream key (tail: a file's identity). */
  stream?: string;
  /** Checkpointed sources: the stream position just after the last event of this chunk. */
  endOffset?: number;
  /**
   * Called exactly once, when every sink that received the events has acknowledged them (delivered,
   * written to its disk buffer, or dead-lettered), or a filter dropped them all. The HTTP source
   * answers its client from here.
   */
  onAck?: () => void;
}

/** What a source is given by the pipeline. */
export interface SourceContext {
  readonly name: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly stats: SourceStats;
  /** The data directory of the log role (checkpoints live under it). */
  readonly dataDir: string;
  /**
   * Hands a chunk to the pipeline, which owns it from now on. Returns false when a sink's buffer
   * is full: the source must stop reading (tail stops, HTTP answers 503, UDP counts drops) until
   * `capacity()` resolves. The chunk passed is always accepted, even when false is returned.
   */
  emit(chunk: Chunk): boolean;
  /** Resolves when every buffer has room again (at once if it has now). */
  capacity(): Promise<void>;
  /** Whether every buffer has room now (for sources that refuse instead of waiting: http, udp). */
  hasCapacity(): boolean;
  /** Checkpoints: only checkpointed sources (tail) use them. */
  readonly checkpoints: SourceCheckpoints;
  /**
   * The most events a checkpointed chunk may hold: the smallest batch of the sinks that take the
   * source. A sink acknowledges a chunk only when all of it is delivered, so a chunk larger than
   * a batch would be sent again in part after a crash; one that fits a batch never is.
   */
  readonly maxChunkEvents: number;
}

/** The per-source counters a source increments (plain numbers, see metrics/families.ts). */
export interface SourceStats {
  /** Events handed to the pipeline. */
  events: Series;
  /** Bytes read. */
  bytes: Series;
  /** Records kept raw because their parser failed. */
  parseErrors: Series;
  /** Records cut at maxLineBytes. */
  truncated: Series;
  /** Records lost before entering the pipeline (UDP syslog while buffers are full). */
  dropped: Series;
  /** Bytes lost for good, by reason (report them through a LossLog, which also logs them). */
  lostBytes(reason: LossReason): Series;
  /** Checkpointed files let go before they were read to their end, by reason. */
  abandoned(reason: AbandonReason): Series;
  /** A gauge: paths the source was given that it cannot read now (tail). */
  unreadablePaths: Series;
  /** Per file: bytes not yet read (tail). Keyed by path; the source deletes a file's series when it lets the file go. */
  lag(path: string): Series;
  forgetLag(path: string): void;
}

/** Identity of a tailed file, stored with its checkpoint so a reused inode is not mistaken for it. */
export interface FileIdentity {
  path: string;
  dev: number;
  ino: number;
  /** Hash (hex) of the first fingerprintLength bytes of the file. */
  fingerprint: string;
  fingerprintLength: number;
  /** When the file was created (wall-clock ms, from the file system), where it says. */
  birth?: number | undefined;
}

/**
 * The bytes just before a read position, as they were read. A file rewritten in place (same first
 * bytes, larger size) shows other bytes there, and must be read again from its start.
 */
export interface ReadMark {
  /** The stream offset the marked bytes end at. */
  offset: number;
  /** How many bytes before offset are covered (fewer than MARK_BYTES near the start). */
  length: number;
  /** Hash (hex) of those bytes. */
  fingerprint: string;
}

/** A checkpointed stream as a source finds it at start. */
export interface ResumePoint {
  stream: string;
  identity: FileIdentity;
  /** Where to resume: the least offset any sink has acknowledged. */
  offset: number;
  /** The file's size when last seen (undefined in checkpoints from before it was kept). */
  size?: number | undefined;
  mark?: ReadMark | undefined;
}

/** What a checkpointed source sees of the checkpoint store. */
export interface SourceCheckpoints {
  /** Every stream checkpointed for this source, with the offset to resume from (the least any sink has acknowledged). */
  list(): ResumePoint[];
  /**
   * Wall-clock time (ms): every file created after it that the source followed has a checkpoint
   * or is remembered as released. A file created after it that is neither was never seen (made
   * and rotated away while the source was stopped, or before it looked). Set at the source's first
   * run; it moves forward only when released files are forgotten (RELEASED_MAX).
   */
  readonly horizon: number;
  /** Whether the source followed this file: a checkpoint of its device and inode, or a released file of that creation time. */
  knownFile(dev: number, ino: number, birth: number): boolean;
  /** The first-bytes fingerprints of every file the source followed and remembers (a copy of one has the same). */
  knownHeads(): { fingerprint: string; fingerprintLength: number }[];
  /**
   * The offsets at which chunks must be cut when resuming a stream: each sink's acknowledged
   * offset above the resume offset. A chunk must not straddle one of them, so a sink that is
   * ahead of the others skips exactly the events it already has.
   */
  cutPoints(stream: string): number[];
  /** Records (or updates) a stream's identity; call before emitting its first chunk. */
  register(stream: string, identity: FileIdentity): void;
  /**
   * How far the source has read a stream (a mark of the bytes before that point) and the file's
   * size. Kept with the stream and written with the next change, never on its own.
   */
  progress(stream: string, size: number, mark: ReadMark): void;
  /** The stream is gone (file deleted or rotated away and drained); drop it once every sink has acknowledged offset. */
  release(stream: string, finalOffset: number): void;
}

/** A source component: reads records and emits chunks until stopped. */
export interface LogSource {
  start(): Promise<void>;
  /** Stops reading, flushes what it holds (a pending multiline event) and releases its files and sockets. */
  stop(): Promise<void>;
  /** What /readyz should say about the source now (a backlog, paths it cannot read); nothing when all is well. */
  health?(): string[];
}

/** What became of one delivery attempt of a batch. */
export type SendOutcome =
  | { kind: 'ok' }
  /** Nothing was stored; `retry` says whether the same batch may succeed later (network errors, 429, 5xx). */
  | { kind: 'failed'; retry: boolean; reason: string; status?: number }
  /** Some events were stored (Elasticsearch `errors: true`): retry these, dead-letter those. */
  | { kind: 'partial'; retry: LogEvent[]; reject: { event: LogEvent; reason: string }[] };

/** A sink's protocol: encodes a batch and delivers it once. Batching, retries, buffering and acks are the runner's. */
export interface SinkDriver {
  send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome>;
  close(): Promise<void>;
}

/** The clock and randomness sink runners and back-off use (injected for tests). */
export interface Timing {
  clock: Clock;
  random: () => number;
}
