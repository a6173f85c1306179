// Joins records into events by the pattern of their first line (stack traces, wrapped messages):
// a matching line starts an event, others are appended; an event is complete when the next one
// starts, after `timeout` without a new line, or when it reaches maxLines / maxBytes.

import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { MultilineConfig } from '../config.js';
import { cutToBytes, RECORD_FLAG, type RecordSink } from './cri.js';

export class MultilineJoiner {
  #start: RegExp;
  #timeout: number;
  #maxLines: number;
  #maxBytes: number;
  #clock: Clock;
  #sink: RecordSink;
  #onTimeout: () => void;

  // The event being built; #lines === 0 when there is none.
  #text = '';
  #bytes = 0;
  #lines = 0;
  #flags = 0;
  #first = 0;
  #end = 0;
  #time: string | undefined;
  #stream: string | undefined;

  #now = 0;
  #lastLineAt = 0;
  #timer: TimerHandle | undefined;
  #closed = false;
  #fire = (): void => this.#onTimer();

  /**
   * `sink` receives each complete event; `onTimeout` is called after the quiet timeout handed one
   * to it outside push(), so the owner can pass it on.
   */
  constructor(config: MultilineConfig, clock: Clock, sink: RecordSink, onTimeout: () => void) {
    this.#start = new RegExp(config.startPattern);
    this.#timeout = config.timeout;
    this.#maxLines = config.maxLines;
    this.#maxBytes = config.maxBytes;
    this.#clock = clock;
    this.#sink = sink;
    this.#onTimeout = onTimeout;
    this.#now = clock.now();
  }

  /**
   * Sets the arrival time of the lines pushed next. The framer calls it once per read rather than
   * reading the clock per line: lines of one read arrived together.
   */
  touch(now: number): void {
    this.#now = now;
  }

  /** One record, as a RecordSink takes it. */
  push(
    text: string,
    bytes: number,
    flags: number,
    start: number,
    end: number,
    time: string | undefined,
    stream: string | undefined,
  ): void {
    this.#lastLineAt = this.#now;
    if (this.#lines > 0) {
      if (!this.#start.test(text)) {
        if (this.#lines < this.#maxLines && this.#bytes + 1 + bytes <= this.#maxBytes) {
          this.#text += '\n' + text;
          this.#bytes += 1 + bytes;
          this.#lines++;
          this.#flags |= flags;
          this.#end = end;
          if (start < this.#first) this.#first = start;
          return;
        }
        // Too long: the event is cut here (flagged) and this line begins the next one.
        this.#flags |= RECORD_FLAG.truncated;
      }
      this.flush();
    }
    if (bytes > this.#maxBytes) {
      text = cutToBytes(text, this.#maxBytes);
      bytes = this.#maxBytes;
      flags |= RECORD_FLAG.truncated;
    }
    this.#text = text;
    this.#bytes = bytes;
    this.#lines = 1;
    this.#flags = flags;
    this.#first = start;
    this.#end = end;
    this.#time = time;
    this.#stream = stream;
    if (this.#timer === undefined && !this.#closed)
      this.#timer = this.#clock.setTimeout(this.#fire, this.#timeout);
  }

  /** Hands over the event being built, if any. */
  flush(): void {
    if (this.#lines === 0) return;
    const text = this.#text;
    this.#text = '';
    this.#lines = 0;
    this.#sink(text, this.#bytes, this.#flags, this.#first, this.#end, this.#time, this.#stream);
  }

  /** Where the event being built starts in the stream (Infinity when none is). */
  heldStart(): number {
    return this.#lines > 0 ? this.#first : Infinity;
  }

  /** Drops the event being built (the stream restarts elsewhere). */
  reset(): void {
    this.#text = '';
    this.#lines = 0;
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  // One timer per joiner, re-armed for the rest of the quiet period rather than reset per line.
  #onTimer(): void {
    this.#timer = undefined;
    if (this.#lines === 0 || this.#closed) return;
    const quiet = this.#clock.now() - this.#lastLineAt;
    if (quiet >= this.#timeout) {
      this.flush();
      this.#onTimeout();
      return;
    }
    this.#timer = this.#clock.setTimeout(this.#fire, this.#timeout - quiet);
  }
}
