// Turns a byte stream into events: splits lines, bounds and flags them, decodes CRI and joins
// multiline groups, parses each record, and knows the stream offset up to which every byte has
// become an event (a checkpoint may point there; nothing before it is still held). A line without
// its newline can be handed over as it is (flagged `partial`), and the rest of it later too.

import { isUtf8 } from 'node:buffer';
import type { Clock } from '../../lib/clock.js';
import type { Series } from '../../metrics/index.js';
import type { MultilineConfig } from '../config.js';
import type { LossSink } from '../loss.js';
import { CriDecoder, NOT_CRI_REASON, RECORD_FLAG, utf8Boundary } from '../parsers/cri.js';
import { MultilineJoiner } from '../parsers/multiline.js';
import { dropRaw, FIELD, type LogEvent } from '../types.js';

export interface LineFramerOptions {
  format: 'lines' | 'cri';
  /** Longer lines are cut at this many bytes (on a character boundary) and flagged `truncated`. */
  maxLineBytes: number;
  multiline?: MultilineConfig | undefined;
  /** Turns a record's text into an event; returns `{ message, parse_error }` when it cannot. */
  parse: (text: string) => LogEvent;
  clock: Clock;
  /**
   * Counters bumped per record cut, and per line kept raw because it is not CRI (the parse
   * function counts its own failures).
   */
  stats?: { parseErrors: Series; truncated: Series } | undefined;
  /** Told the bytes of each line past maxLineBytes, which are dropped. */
  loss?: LossSink | undefined;
  /** A field that receives `path` on every event. */
  pathField?: string | undefined;
  path?: string | undefined;
  /** The stream offset of the first byte pushed (a resumed file starts at its checkpoint). */
  offset?: number | undefined;
  /**
   * The stream starts in the middle of a line whose first part was handed over as partial (a file
   * resumed after a restart): the first record is flagged `partial` too.
   */
  continued?: boolean | undefined;
  /** Called when events became ready outside push() (a multiline group completed by its timeout). */
  onReady?: (() => void) | undefined;
}

const NL = 10;
const CR = 13;
const INITIAL_CARRY = 64 * 1024;

export class LineFramer {
  #maxLine: number;
  #parse: (text: string) => LogEvent;
  #clock: Clock;
  #parseErrors: Series | undefined;
  #truncated: Series | undefined;
  #pathField: string | undefined;
  #path: string | undefined;
  #onReady: (() => void) | undefined;
  #loss: LossSink | undefined;

  #cri: CriDecoder | undefined;
  // One joiner per CRI stream, so a stack trace on stderr is not broken by lines on stdout.
  #joiner: MultilineJoiner | undefined;
  #joinerErr: MultilineJoiner | undefined;

  #position: number;
  /** The end of the last record that became an event. */
  #doneEnd: number;
  #ready: LogEvent[] = [];

  // The line still without its newline: at most maxLineBytes + 1 bytes (the +1 for a CR).
  #carry: Buffer = Buffer.alloc(0);
  #carryLen = 0;
  #carryStart = 0;
  /** The current line passed maxLineBytes: its remaining bytes are dropped up to the newline. */
  #skipping = false;
  /** Every byte of the carried line so far, dropped ones too, and the last of them (for a CR). */
  #lineBytes = 0;
  #lastByte = 0;
  /** The first part of the current line was handed over as partial: its rest is flagged too. */
  #continued: boolean;

  // Bound once here so the stages call each other without a closure per record.
  #toJoinerOrEmit = this.#afterCri.bind(this);
  #emitBound = this.#emit.bind(this);

  constructor(opts: LineFramerOptions) {
    this.#maxLine = opts.maxLineBytes;
    this.#parse = opts.parse;
    this.#clock = opts.clock;
    this.#parseErrors = opts.stats?.parseErrors;
    this.#truncated = opts.stats?.truncated;
    this.#pathField = opts.pathField;
    this.#path = opts.path;
    this.#onReady = opts.onReady;
    this.#loss = opts.loss;
    this.#continued = opts.continued === true;
    this.#position = opts.offset ?? 0;
    this.#doneEnd = this.#position;
    if (opts.format === 'cri') this.#cri = new CriDecoder(this.#toJoinerOrEmit, opts.maxLineBytes);
    if (opts.multiline) {
      const timedOut = (): void => this.#onReady?.();
      this.#joiner = new MultilineJoiner(opts.multiline, opts.clock, this.#emitBound, timedOut);
      if (this.#cri)
        this.#joinerErr = new MultilineJoiner(opts.multiline, opts.clock, this.#emitBound, timedOut);
    }
  }

  /** The stream offset just after the last byte pushed. */
  get position(): number {
    return this.#position;
  }

  /**
   * The stream offset up to which every byte belongs to an event already produced: the end of the
   * last event, or, when records that started earlier are still held (a CRI partial line of the
   * other stream), where the oldest of them starts. A chunk's endOffset; it never decreases.
   */
  get committedOffset(): number {
    let c = this.#doneEnd;
    if (this.#cri) {
      const h = this.#cri.heldStart();
      if (h < c) c = h;
    }
    if (this.#joiner) {
      const h = this.#joiner.heldStart();
      if (h < c) c = h;
    }
    if (this.#joinerErr) {
      const h = this.#joinerErr.heldStart();
      if (h < c) c = h;
    }
    return c;
  }

  /** Memory held for the line still without its newline: never more than maxLineBytes + 1. */
  get heldBytes(): number {
    return this.#carry.length;
  }

  /** Bytes of a line still without its newline (held, or being skipped past maxLineBytes). */
  get pendingBytes(): number {
    return this.#lineBytes;
  }

  /** Events produced and not yet taken. */
  get readyCount(): number {
    return this.#ready.length;
  }

  /** The events produced since the last take(), in stream order. */
  take(): LogEvent[] {
    const out = this.#ready;
    this.#ready = [];
    return out;
  }

  set path(path: string) {
    this.#path = path;
  }

  /** Frames the next bytes of the stream. The buffer may be reused by the caller afterwards. */
  push(chunk: Buffer): void {
    const len = chunk.length;
    const base = this.#position;
    const now = this.#joiner ? this.#clock.now() : 0;
    this.#joiner?.touch(now);
    this.#joinerErr?.touch(now);
    let pos = 0;

    if (this.#carryLen > 0 || this.#skipping) {
      const nl = chunk.indexOf(NL);
      if (nl < 0) {
        this.#appendCarry(chunk, 0, len);
        this.#position = base + len;
        return;
      }
      this.#appendCarry(chunk, 0, nl);
      this.#finishCarried(base + nl + 1);
      pos = nl + 1;
    }

    const lastNl = chunk.lastIndexOf(NL);
    if (lastNl >= pos) {
      // One validation of all complete lines; per-line checks only when it fails (rare).
      const allUtf8 = isUtf8(chunk.subarray(pos, lastNl + 1));
      const max = this.#maxLine;
      while (pos <= lastNl) {
        const nl = chunk.indexOf(NL, pos);
        let e = nl;
        if (e > pos && chunk[e - 1] === CR) e--;
        let flags = 0;
        if (e - pos > max) {
          const full = e;
          e = pos + utf8Boundary(chunk.subarray(pos, e), max);
          flags = RECORD_FLAG.truncated;
          this.#loss?.lost('line_too_long', full - e, { path: this.#path });
        }
        if (!allUtf8 && !isUtf8(chunk.subarray(pos, e))) flags |= RECORD_FLAG.invalidUtf8;
        this.#record(chunk.toString('utf8', pos, e), e - pos, flags, base + pos, base + nl + 1);
        pos = nl + 1;
      }
    }

    if (pos < len) {
      this.#carryStart = base + pos;
      this.#appendCarry(chunk, pos, len);
    }
    this.#position = base + len;
  }

  /** Completes the multiline group being built (the source stops, or a chunk must end here). */
  flushGroup(): void {
    this.#joiner?.flush();
    this.#joinerErr?.flush();
  }

  /**
   * The stream has ended (stdin closed, a rotated file drained, a truncated file's old content):
   * the last line without a newline (flagged `partial`), partial CRI lines and the group being
   * built become events. `cut`: the last line is known to go on beyond what was read (the file was
   * truncated under it), so it is flagged `truncated` instead.
   */
  end(cut = false): void {
    if (this.#lineBytes > 0) this.#finishCarried(this.#position, cut, !cut);
    this.#cri?.flush(this.#position);
    this.flushGroup();
  }

  /**
   * Hands over the line still without its newline as it is, flagged `partial` (its writer left it
   * so for partialLineTimeout, or the source stops at the end of its file). Bytes that complete it
   * later become another event, flagged `partial` as well. False when there is no such line.
   */
  flushPartial(): boolean {
    if (this.#lineBytes === 0) return false;
    this.#finishCarried(this.#position, false, true);
    this.#continued = true;
    return true;
  }

  /** Forgets everything held and continues at `offset` (a truncated file read again from 0). */
  reset(offset: number): void {
    this.#carryLen = 0;
    this.#skipping = false;
    this.#lineBytes = 0;
    this.#continued = false;
    this.#cri?.reset();
    this.#joiner?.reset();
    this.#joinerErr?.reset();
    this.#position = offset;
    this.#doneEnd = offset;
  }

  /** Cancels the multiline timers. */
  close(): void {
    this.#joiner?.close();
    this.#joinerErr?.close();
  }

  #appendCarry(chunk: Buffer, from: number, to: number): void {
    if (to > from) {
      this.#lineBytes += to - from;
      this.#lastByte = chunk[to - 1]!;
    }
    if (this.#skipping) return;
    const cap = this.#maxLine + 1;
    const n = to - from;
    const want = this.#carryLen + n;
    if (want > this.#carry.length && this.#carry.length < cap) {
      let size = Math.max(this.#carry.length * 2, INITIAL_CARRY);
      while (size < want && size < cap) size *= 2;
      const grown = Buffer.allocUnsafe(Math.min(size, cap));
      this.#carry.copy(grown, 0, 0, this.#carryLen);
      this.#carry = grown;
    }
    if (want > cap) {
      // Keep maxLineBytes + 1 bytes (the extra one shows where a character ends), drop the rest.
      chunk.copy(this.#carry, this.#carryLen, from, from + (cap - this.#carryLen));
      this.#carryLen = utf8Boundary(this.#carry, this.#maxLine);
      this.#skipping = true;
      return;
    }
    chunk.copy(this.#carry, this.#carryLen, from, to);
    this.#carryLen = want;
  }

  #finishCarried(end: number, cut = false, partial = false): void {
    let n = this.#carryLen;
    let flags = this.#skipping || cut ? RECORD_FLAG.truncated : 0;
    // A line's length without the CR before its newline (a partial line keeps a CR it ends with).
    const whole = !cut && !partial && this.#lastByte === CR ? this.#lineBytes - 1 : this.#lineBytes;
    if (!this.#skipping) {
      if (!cut && !partial && n > 0 && this.#carry[n - 1] === CR) n--;
      if (n > this.#maxLine) {
        n = utf8Boundary(this.#carry, this.#maxLine);
        flags = RECORD_FLAG.truncated;
      }
    }
    if (whole > n && !cut) this.#loss?.lost('line_too_long', whole - n, { path: this.#path });
    if (partial) flags |= RECORD_FLAG.partial;
    this.#lineBytes = 0;
    const line = this.#carry.subarray(0, n);
    if (!isUtf8(line)) flags |= RECORD_FLAG.invalidUtf8;
    const text = line.toString('utf8');
    this.#carryLen = 0;
    this.#skipping = false;
    // A long line's buffer is let go once the line is done, so one huge line does not pin memory.
    if (this.#carry.length > INITIAL_CARRY) this.#carry = Buffer.alloc(0);
    this.#record(text, n, flags, this.#carryStart, end);
  }

  #record(text: string, bytes: number, flags: number, start: number, end: number): void {
    if (this.#continued) {
      // The rest of a line whose first part went out as partial; only its newline is no event.
      this.#continued = false;
      if (bytes === 0) {
        if (end > this.#doneEnd) this.#doneEnd = end;
        return;
      }
      flags |= RECORD_FLAG.partial;
    }
    if (this.#cri) this.#cri.line(text, bytes, flags, start, end);
    else if (this.#joiner) this.#joiner.push(text, bytes, flags, start, end, undefined, undefined);
    else this.#emit(text, bytes, flags, start, end, undefined, undefined);
  }

  #afterCri(
    text: string,
    bytes: number,
    flags: number,
    start: number,
    end: number,
    time: string | undefined,
    stream: string | undefined,
  ): void {
    // A line that is not CRI skips the joiner: it would otherwise make a whole group unparsed.
    if (this.#joiner === undefined || (flags & RECORD_FLAG.notCri) !== 0)
      this.#emit(text, bytes, flags, start, end, time, stream);
    else if (stream === 'stderr') this.#joinerErr!.push(text, bytes, flags, start, end, time, stream);
    else this.#joiner.push(text, bytes, flags, start, end, time, stream);
  }

  #emit(
    text: string,
    _bytes: number,
    flags: number,
    _start: number,
    end: number,
    time: string | undefined,
    stream: string | undefined,
  ): void {
    let ev: LogEvent;
    if ((flags & RECORD_FLAG.notCri) !== 0) {
      ev = { [FIELD.message]: text, [FIELD.parseError]: NOT_CRI_REASON };
      if (this.#parseErrors) this.#parseErrors.value++;
    } else ev = this.#parse(text);
    // The raw text goes before fields are set: a lean event takes its fields from it first.
    if (flags !== 0 || time !== undefined || stream !== undefined || this.#pathField !== undefined)
      dropRaw(ev);
    if (flags !== 0) {
      if ((flags & RECORD_FLAG.truncated) !== 0) {
        ev[FIELD.truncated] = true;
        if (this.#truncated) this.#truncated.value++;
      }
      if ((flags & RECORD_FLAG.invalidUtf8) !== 0) ev[FIELD.invalidUtf8] = true;
      if ((flags & RECORD_FLAG.partial) !== 0) ev[FIELD.partial] = true;
    }
    // The app's own `time`/`stream` fields (a JSON log line) win over the runtime's.
    if (time !== undefined && ev[FIELD.time] === undefined) ev[FIELD.time] = time;
    if (stream !== undefined && ev[FIELD.stream] === undefined) ev[FIELD.stream] = stream;
    if (this.#pathField !== undefined) ev[this.#pathField] = this.#path;
    this.#ready.push(ev);
    if (end > this.#doneEnd) this.#doneEnd = end;
  }
}
