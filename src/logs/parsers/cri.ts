// Decodes the kubelet/containerd CRI log format (`<time> <stream> <P|F> <text>`, one record per
// line) and joins the P(artial) records of a stream up to its F(ull) record (see src/pod/cri-log.ts).

import { cutToBytes, utf8Boundary } from '../../lib/utf8.js';

// The framing stages (line-framer, multiline) take the cuts from here, with the record flags.
export { cutToBytes, utf8Boundary };

/** Bits a record carries through the framing stages, turned into event fields at the end. */
export const RECORD_FLAG = {
  /** The record was cut at a byte limit. */
  truncated: 1,
  /** The record held bytes that were not UTF-8. */
  invalidUtf8: 2,
  /** The line was not a CRI record; it is kept raw with `parse_error`. */
  notCri: 4,
  /** The line was handed over without its newline, or is the rest of one that was. */
  partial: 8,
} as const;

/** Why a line that is not a CRI record is kept raw (the event's `parse_error`). */
export const NOT_CRI_REASON = 'not a CRI log record';

/**
 * Receives each record: its text, its size in bytes, RECORD_FLAG bits, the stream offsets where it
 * starts and just after its last line ends, and for CRI records the runtime's time and stream.
 */
export type RecordSink = (
  text: string,
  bytes: number,
  flags: number,
  start: number,
  end: number,
  time: string | undefined,
  stream: string | undefined,
) => void;

interface PartialLine {
  text: string;
  bytes: number;
  flags: number;
  start: number;
  time: string;
  /** The joined text reached maxBytes: later partials of this line are dropped. */
  full: boolean;
}

const SPACE = 32;
const P = 80;
const F = 70;

/** Joins CRI records; one per framer, so the partial lines held are those of one file. */
export class CriDecoder {
  #sink: RecordSink;
  #maxBytes: number;
  #stdout: PartialLine | undefined;
  #stderr: PartialLine | undefined;

  constructor(sink: RecordSink, maxBytes: number) {
    this.#sink = sink;
    this.#maxBytes = maxBytes;
  }

  /** One line (without its newline) that ends at `end` in the stream; `bytes` is its UTF-8 length. */
  line(text: string, bytes: number, flags: number, start: number, end: number): void {
    // Hand-rolled rather than a regular expression: this runs once per line at full read speed.
    const sp = text.indexOf(' ');
    const tagAt = sp + 8;
    if (
      sp < 19 ||
      text.length <= tagAt ||
      !(text.startsWith('stdout ', sp + 1) || text.startsWith('stderr ', sp + 1)) ||
      (text.length > tagAt + 1 && text.charCodeAt(tagAt + 1) !== SPACE) ||
      !looksLikeTime(text)
    ) {
      this.#sink(text, bytes, flags | RECORD_FLAG.notCri, start, end, undefined, undefined);
      return;
    }
    const tag = text.charCodeAt(tagAt);
    if (tag !== P && tag !== F) {
      this.#sink(text, bytes, flags | RECORD_FLAG.notCri, start, end, undefined, undefined);
      return;
    }
    const isOut = text.charCodeAt(sp + 4) === 111; // 'o' of stdout
    const head = tagAt + 2;
    // The header is ASCII, so its length in characters is its length in bytes.
    const contentBytes = Math.max(0, bytes - head);
    let content = text.length > head ? text.slice(head) : '';
    let pending = isOut ? this.#stdout : this.#stderr;

    if (tag === P) {
      if (pending === undefined) {
        pending = { text: '', bytes: 0, flags: 0, start, time: text.slice(0, sp), full: false };
        if (isOut) this.#stdout = pending;
        else this.#stderr = pending;
      }
      this.#append(pending, content, contentBytes, flags);
      return;
    }
    const stream = isOut ? 'stdout' : 'stderr';
    if (pending === undefined) {
      if (contentBytes > this.#maxBytes) {
        content = cutToBytes(content, this.#maxBytes);
        flags |= RECORD_FLAG.truncated;
      }
      this.#sink(
        content,
        Math.min(contentBytes, this.#maxBytes),
        flags,
        start,
        end,
        text.slice(0, sp),
        stream,
      );
      return;
    }
    this.#append(pending, content, contentBytes, flags);
    if (isOut) this.#stdout = undefined;
    else this.#stderr = undefined;
    this.#sink(pending.text, pending.bytes, pending.flags, pending.start, end, pending.time, stream);
  }

  /** The stream offset where the oldest partial line held starts (Infinity when none is held). */
  heldStart(): number {
    const a = this.#stdout?.start ?? Infinity;
    const b = this.#stderr?.start ?? Infinity;
    return a < b ? a : b;
  }

  /** Hands over partial lines still held (their file ended without the F record), oldest first. */
  flush(end: number): void {
    const out = this.#stdout;
    const err = this.#stderr;
    this.#stdout = undefined;
    this.#stderr = undefined;
    const first = out && err && err.start < out.start ? err : out;
    const second = first === out ? err : out;
    for (const p of [first, second]) {
      if (p) this.#sink(p.text, p.bytes, p.flags, p.start, end, p.time, p === out ? 'stdout' : 'stderr');
    }
  }

  /** Forgets held partials (the stream restarts elsewhere, e.g. after a truncation). */
  reset(): void {
    this.#stdout = undefined;
    this.#stderr = undefined;
  }

  #append(p: PartialLine, content: string, bytes: number, flags: number): void {
    p.flags |= flags;
    if (p.full) return;
    const room = this.#maxBytes - p.bytes;
    if (bytes > room) {
      p.text += cutToBytes(content, room);
      p.bytes = this.#maxBytes;
      p.flags |= RECORD_FLAG.truncated;
      p.full = true;
      return;
    }
    p.text += content;
    p.bytes += bytes;
  }
}

/** A cheap shape check of an RFC 3339 time at the start of a line (`2026-11-21T07:35:46...`). */
function looksLikeTime(text: string): boolean {
  const c = text.charCodeAt(0);
  return (
    c >= 48 && c <= 57 && text.charCodeAt(4) === 45 && text.charCodeAt(7) === 45 && text.charCodeAt(10) === 84
  );
}
