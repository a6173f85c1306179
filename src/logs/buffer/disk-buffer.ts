// A sink's disk buffer: checksummed records in segment files, read lazily a batch at a time, with an
// `ack` file holding the acknowledged read position, so that unacknowledged events survive restarts.

import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomicSync } from '../../lib/atomic-write.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { encodeEvent } from '../sinks/encode.js';
import type { LogEvent } from '../types.js';
import { crc32 } from './crc32.js';

/** Record header: payload length (u32 LE), CRC-32 of the payload (u32 LE). */
const HEADER = 8;
/** V8's longest string: a payload longer than this could never be decoded, so its length is not sane. */
const MAX_RECORD = 0x1fffffe8;
const SEGMENT_RE = /^(\d{16})\.seg$/;
const MAX_SEGMENT_BYTES = 8 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 4096;
const SYNC_INTERVAL_MS = 1000;
const SCAN_BLOCK = 64 * 1024;
const CORRUPT = 'PILLION_ERR_LOGS_BUFFER_CORRUPT';

/** A read position: a record (segment id, byte offset) and how many of its events are already taken. */
export interface BufferPosition {
  segment: number;
  offset: number;
  skip: number;
}

/** Events read from the buffer; pass `end` to ack() once they are delivered. */
export interface DiskBatch {
  events: LogEvent[];
  /** Bytes the events stood for when pushed (an item's bytes, shared out when an item is split). */
  bytes: number;
  end: BufferPosition;
}

export interface DiskBufferOptions {
  dir: string;
  /** append() refuses a record that would take the files past this (unless the buffer is empty). */
  maxBytes: number;
  /** Segments roll at this size; by default an eighth of maxBytes, between 4 KiB and 8 MiB. */
  segmentBytes?: number;
  clock: Clock;
  logger: Logger;
}

interface Segment {
  id: number;
  size: number;
}

interface Decoded {
  events: LogEvent[];
  bytes: number;
  next: number;
}

export class DiskBuffer {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Oldest first; the last one is being written. */
  #segments: Segment[] = [];
  #bytes = 0;
  #wfd = -1;
  #ack: BufferPosition = { segment: 0, offset: 0, skip: 0 };
  // The reader runs ahead of the ack position by the batch in flight.
  #rSeg = 0;
  #rOff = 0;
  #rSkip = 0;
  #rfd = -1;
  #rfdSeg = -1;
  /** The record at the read position, decoded, while a batch has taken only part of it. */
  #cur: Decoded | undefined;
  #header = Buffer.alloc(HEADER);
  #corrupt = 0;
  #bytesRead = 0;
  #syncTimer: TimerHandle | undefined;
  #closed = false;

  private constructor(opts: DiskBufferOptions) {
    this.#dir = opts.dir;
    this.#maxBytes = opts.maxBytes;
    this.#segmentBytes =
      opts.segmentBytes ??
      Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_SEGMENT_BYTES, Math.floor(opts.maxBytes / 8)));
    this.#clock = opts.clock;
    this.#log = opts.logger;
  }

  /**
   * Opens (or creates) the buffer in dir. Reads only the ack file and the tail of the last segment
   * (to cut a record torn by a crash), never the records themselves (Vector #26035).
   */
  static open(opts: DiskBufferOptions): DiskBuffer {
    const b = new DiskBuffer(opts);
    b.#open();
    return b;
  }

  /** Bytes of all segment files: unacknowledged records plus the acknowledged head of the oldest segment. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether records were appended that read() has not returned yet. */
  get hasUnread(): boolean {
    return !this.#atWriteEnd(this.#rSeg, this.#rOff);
  }

  /** Whether some record is not acknowledged yet. */
  get hasUnacked(): boolean {
    return !this.#atWriteEnd(this.#ack.segment, this.#ack.offset);
  }

  /** Records found corrupt (torn or failing their checksum) and skipped since open. */
  get corrupt(): number {
    return this.#corrupt;
  }

  /** Bytes read from the segment files since open (diagnostics: reads are lazy). */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /**
   * Appends one record holding events. Returns false, writing nothing, when it would take the buffer
   * past maxBytes; a record is always taken by an empty buffer, so one larger than maxBytes cannot
   * wedge it. Throws on an I/O error (nothing counted as written).
   */
  append(events: readonly LogEvent[], bytes: number): boolean {
    if (this.#closed) throw new Error('disk buffer is closed');
    if (events.length === 0) return true;
    const text = `${Math.max(0, Math.round(bytes))}\n${encodeEvents(events)}`;
    const len = Buffer.byteLength(text);
    const size = HEADER + len;
    if (this.#bytes > 0 && this.#bytes + size > this.#maxBytes) return false;
    let last = this.#segments[this.#segments.length - 1]!;
    if (last.size > 0 && last.size + size > this.#segmentBytes) last = this.#roll();
    const rec = Buffer.allocUnsafe(size);
    rec.write(text, HEADER, 'utf8');
    rec.writeUInt32LE(len, 0);
    rec.writeUInt32LE(crc32(rec, HEADER, size), 4);
    // One positional write per record and no fsync: the page cache outlives a crash of this process
    // (kill -9), and a write that failed half-way is overwritten by the next append at the same offset.
    let done = 0;
    while (done < size) done += writeSync(this.#wfd, rec, done, size - done, last.size + done);
    last.size += size;
    this.#bytes += size;
    // fsync at most once a second (and on close): that bounds what a power cut can take.
    this.#syncTimer ??= this.#clock.setTimeout(() => this.#sync(), SYNC_INTERVAL_MS);
    return true;
  }

  /**
   * The next events after those already read: up to maxEvents, and up to maxBytes (at least one
   * event). A record larger than that is split; the rest comes with the next read. Undefined when
   * every appended record has been read. Corrupt records met on the way are skipped and counted; if
   * they were all there was, the batch is empty (ack it to move past them).
   */
  read(maxEvents: number, maxBytes: number): DiskBatch | undefined {
    if (this.#closed) return undefined;
    maxEvents = Math.max(1, Math.floor(maxEvents));
    const startSeg = this.#rSeg;
    const startOff = this.#rOff;
    const events: LogEvent[] = [];
    let bytes = 0;
    while (events.length < maxEvents && bytes < maxBytes) {
      const rec = this.#current();
      if (!rec) break;
      const all = rec.events;
      const per = rec.bytes / all.length;
      let take = Math.min(all.length - this.#rSkip, maxEvents - events.length);
      if (per > 0) {
        const fit = Math.floor((maxBytes - bytes) / per + 1e-9);
        take = Math.min(take, events.length === 0 ? Math.max(1, fit) : fit);
      }
      if (take <= 0) break;
      const from = this.#rSkip;
      for (let i = from; i < from + take; i++) events.push(all[i]!);
      bytes += per * take;
      this.#rSkip += take;
      if (this.#rSkip >= all.length) {
        this.#rOff = rec.next;
        this.#rSkip = 0;
        this.#cur = undefined;
      }
    }
    if (events.length === 0 && this.#rSeg === startSeg && this.#rOff === startOff) return undefined;
    return { events, bytes, end: { segment: this.#rSeg, offset: this.#rOff, skip: this.#rSkip } };
  }

  /**
   * Acknowledges everything up to end (a batch's end, in the order read): records the position in
   * the ack file (temp + rename) and deletes the segments wholly before it.
   */
  ack(end: BufferPosition): void {
    if (this.#closed) return;
    this.#ack = { segment: end.segment, offset: end.offset, skip: end.skip };
    while (this.#segments.length > 1 && this.#segments[0]!.id < end.segment) {
      const seg = this.#segments.shift()!;
      this.#bytes -= seg.size;
      this.#unlink(seg.id);
    }
    const last = this.#segments[this.#segments.length - 1]!;
    if (end.skip === 0 && this.#atWriteEnd(end.segment, end.offset) && last.size > 0) {
      // Everything is acknowledged: empty the segment in place so the bytes on disk drop to zero.
      // Truncate before writing the ack: a crash between the two leaves an ack past the end,
      // which open() clamps, rather than an ack at 0 with the old records still there.
      ftruncateSync(this.#wfd, 0);
      this.#bytes -= last.size;
      last.size = 0;
      this.#ack = { segment: last.id, offset: 0, skip: 0 };
      this.#rSeg = last.id;
      this.#rOff = 0;
      this.#rSkip = 0;
      this.#cur = undefined;
    }
    this.#writeAck();
  }

  /** Flushes to disk and closes the files. Unacknowledged records are read again after the next open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#syncTimer?.cancel();
    this.#syncTimer = undefined;
    if (this.#wfd >= 0) {
      try {
        fsyncSync(this.#wfd);
      } catch (err) {
        this.#log.warn({ err, dir: this.#dir }, 'cannot flush the disk buffer');
      }
      closeSync(this.#wfd);
      this.#wfd = -1;
    }
    this.#closeReader();
  }

  // --- opening --------------------------------------------------------------------------------

  #open(): void {
    mkdirSync(this.#dir, { recursive: true, mode: 0o750 });
    const ids: number[] = [];
    for (const name of readdirSync(this.#dir)) {
      const m = SEGMENT_RE.exec(name);
      if (m) ids.push(Number(m[1]));
    }
    ids.sort((a, b) => a - b);
    const ack = this.#readAck() ?? { segment: ids[0] ?? 0, offset: 0, skip: 0 };
    for (const id of ids) {
      if (id < ack.segment) this.#unlink(id);
      else this.#segments.push({ id, size: statSync(this.#segPath(id)).size });
    }
    const first = this.#segments[0];
    if (!first) {
      this.#segments.push({ id: ack.segment, size: 0 });
      this.#wfd = openSync(this.#segPath(ack.segment), 'w', 0o640);
      this.#ack = { segment: ack.segment, offset: 0, skip: 0 };
    } else {
      if (first.id !== ack.segment) {
        ack.segment = first.id;
        ack.offset = 0;
        ack.skip = 0;
      }
      const last = this.#segments[this.#segments.length - 1]!;
      this.#wfd = openSync(this.#segPath(last.id), 'r+');
      this.#cutTornTail(last, last.id === ack.segment ? Math.min(ack.offset, last.size) : 0);
      if (ack.offset > first.size) {
        ack.offset = first.size;
        ack.skip = 0;
      }
      this.#ack = ack;
    }
    for (const s of this.#segments) this.#bytes += s.size;
    this.#rSeg = this.#ack.segment;
    this.#rOff = this.#ack.offset;
    this.#rSkip = this.#ack.skip;
  }

  #readAck(): BufferPosition | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.#dir, 'ack'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const v = JSON.parse(text) as Partial<BufferPosition>;
      if (isCount(v.segment) && isCount(v.offset) && isCount(v.skip))
        return { segment: v.segment, offset: v.offset, skip: v.skip };
    } catch {
      // reported below
    }
    // Delivering the oldest segment again is better than guessing past records nobody acknowledged.
    this.#log.warn(
      { code: CORRUPT, dir: this.#dir },
      'the disk buffer ack file is corrupt; records are read again from the oldest segment',
    );
    return undefined;
  }

  /**
   * A crash can leave the last record short, or (after a power cut) full length but not written;
   * walk the headers of the last segment from `from` and cut the file after the last whole record.
   * Only headers are read (in blocks), plus the last record to check its checksum.
   */
  #cutTornTail(seg: Segment, from: number): void {
    const size = seg.size;
    const block = Buffer.allocUnsafe(Math.min(SCAN_BLOCK, Math.max(HEADER, size - from)));
    let blockStart = 0;
    let blockLen = 0;
    let pos = from;
    let last = -1;
    while (pos + HEADER <= size) {
      if (pos < blockStart || pos + HEADER > blockStart + blockLen) {
        blockLen = readSync(this.#wfd, block, 0, block.length, pos);
        this.#bytesRead += blockLen;
        blockStart = pos;
        if (blockLen < HEADER) break;
      }
      const len = block.readUInt32LE(pos - blockStart);
      if (len === 0 || len > MAX_RECORD || pos + HEADER + len > size) break;
      last = pos;
      pos += HEADER + len;
    }
    if (last >= 0 && !this.#checksumOk(this.#wfd, last)) pos = last;
    if (pos < size) {
      this.#corrupt++;
      this.#log.warn(
        { code: CORRUPT, segment: seg.id, offset: pos, bytes: size - pos },
        'the disk buffer ends with a torn record (the process stopped mid-write); it is cut off',
      );
      ftruncateSync(this.#wfd, pos);
      seg.size = pos;
    }
  }

  #checksumOk(fd: number, pos: number): boolean {
    this.#readFull(fd, this.#header, pos);
    const len = this.#header.readUInt32LE(0);
    const want = this.#header.readUInt32LE(4);
    const payload = Buffer.allocUnsafe(len);
    return this.#readFull(fd, payload, pos + HEADER) === len && crc32(payload) === want;
  }

  // --- reading --------------------------------------------------------------------------------

  /** The record at the read position, decoded; skips (and counts) corrupt ones. */
  #current(): Decoded | undefined {
    if (this.#cur) return this.#cur;
    for (;;) {
      if (this.#atWriteEnd(this.#rSeg, this.#rOff)) return undefined;
      const seg = this.#segment(this.#rSeg);
      if (!seg || this.#rOff >= seg.size) {
        this.#nextSegment();
        continue;
      }
      const fd = this.#reader(seg.id);
      const left = seg.size - this.#rOff;
      if (left < HEADER) {
        this.#skipped('a torn record at the end of a segment', true);
        continue;
      }
      this.#readFull(fd, this.#header, this.#rOff);
      const len = this.#header.readUInt32LE(0);
      if (len === 0 || len > MAX_RECORD || HEADER + len > left) {
        // Without a sane length there is no next record to find: go on with the next segment.
        this.#skipped('a record with an impossible length', true);
        continue;
      }
      const payload = Buffer.allocUnsafe(len);
      const got = this.#readFull(fd, payload, this.#rOff + HEADER);
      if (got !== len || crc32(payload) !== this.#header.readUInt32LE(4)) {
        this.#skipped('a record failing its checksum', false, len);
        continue;
      }
      const rec = decode(payload);
      if (!rec || this.#rSkip >= rec.events.length) {
        if (!rec) this.#skipped('a record that does not decode', false, len);
        else {
          this.#rOff += HEADER + len;
          this.#rSkip = 0;
        }
        continue;
      }
      this.#cur = { events: rec.events, bytes: rec.bytes, next: this.#rOff + HEADER + len };
      return this.#cur;
    }
  }

  #skipped(what: string, toNextSegment: boolean, len = 0): void {
    this.#corrupt++;
    this.#log.warn(
      { code: CORRUPT, segment: this.#rSeg, offset: this.#rOff },
      `the disk buffer holds ${what}; it is skipped`,
    );
    if (toNextSegment) this.#nextSegment();
    else {
      this.#rOff += HEADER + len;
      this.#rSkip = 0;
    }
  }

  #nextSegment(): void {
    const i = this.#segments.findIndex((s) => s.id > this.#rSeg);
    this.#rSkip = 0;
    this.#cur = undefined;
    if (i < 0) {
      // Only the segment being written is left: resume at its end, where the next append lands.
      const last = this.#segments[this.#segments.length - 1]!;
      this.#rSeg = last.id;
      this.#rOff = last.size;
      return;
    }
    this.#rSeg = this.#segments[i]!.id;
    this.#rOff = 0;
  }

  #reader(id: number): number {
    if (this.#rfdSeg === id) return this.#rfd;
    this.#closeReader();
    this.#rfd = openSync(this.#segPath(id), 'r');
    this.#rfdSeg = id;
    return this.#rfd;
  }

  #closeReader(): void {
    if (this.#rfd >= 0) closeSync(this.#rfd);
    this.#rfd = -1;
    this.#rfdSeg = -1;
  }

  #readFull(fd: number, buf: Buffer, pos: number): number {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    this.#bytesRead += done;
    return done;
  }

  // --- writing --------------------------------------------------------------------------------

  #roll(): Segment {
    const last = this.#segments[this.#segments.length - 1]!;
    this.#syncTimer?.cancel();
    this.#syncTimer = undefined;
    fsyncSync(this.#wfd);
    closeSync(this.#wfd);
    const seg = { id: last.id + 1, size: 0 };
    this.#wfd = openSync(this.#segPath(seg.id), 'w', 0o640);
    this.#segments.push(seg);
    return seg;
  }

  #sync(): void {
    this.#syncTimer = undefined;
    if (this.#wfd < 0) return;
    try {
      fsyncSync(this.#wfd);
    } catch (err) {
      this.#log.warn({ err, dir: this.#dir }, 'cannot flush the disk buffer');
    }
  }

  #writeAck(): void {
    // No fsync: a process crash keeps the page cache; after a power cut an older ack only means
    // some events are delivered twice, which at-least-once allows.
    writeFileAtomicSync(join(this.#dir, 'ack'), JSON.stringify(this.#ack), { mode: 0o640, sync: false });
  }

  #unlink(id: number): void {
    if (this.#rfdSeg === id) this.#closeReader();
    try {
      unlinkSync(this.#segPath(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  // --- positions ------------------------------------------------------------------------------

  #atWriteEnd(segment: number, offset: number): boolean {
    const last = this.#segments[this.#segments.length - 1];
    return !last || (segment === last.id && offset >= last.size) || segment > last.id;
  }

  #segment(id: number): Segment | undefined {
    for (const s of this.#segments) if (s.id === id) return s;
    return undefined;
  }

  #segPath(id: number): string {
    return join(this.#dir, `${String(id).padStart(16, '0')}.seg`);
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Payload: the item's bytes in decimal, a newline, then its events as one JSON array. */
function decode(payload: Buffer): { events: LogEvent[]; bytes: number } | undefined {
  const text = payload.toString('utf8');
  const nl = text.indexOf('\n');
  if (nl <= 0) return undefined;
  const bytes = Number(text.slice(0, nl));
  try {
    const events = JSON.parse(text.slice(nl + 1)) as unknown;
    if (!Array.isArray(events) || events.length === 0 || !Number.isFinite(bytes)) return undefined;
    return { events: events as LogEvent[], bytes };
  } catch {
    return undefined;
  }
}

/**
 * Event by event through encodeEvent: an event that keeps its JSON text (a lean one has nothing
 * else) is written as that text, and a BigInt or a cycle in one event is encoded as well as JSON
 * allows rather than failing the others.
 */
function encodeEvents(events: readonly LogEvent[]): string {
  const parts = new Array<string>(events.length);
  for (let i = 0; i < events.length; i++) parts[i] = encodeEvent(events[i]);
  return `[${parts.join(',')}]`;
}
