// Keeps what a destination refused for good, one NDJSON line per event in
// `<dataDir>/dead-letter/<sink>.ndjson`, bounded by size with one rotated file (`.1`) beside it.

import { closeSync, fstatSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import type { LogEvent } from '../types.js';
import { encodeEvent } from './encode.js';

export const DEAD_LETTER_MAX_BYTES = 64 * 1024 * 1024;

export interface DeadLetterOptions {
  /** The log role's data directory; the file goes in its `dead-letter/` folder. */
  dataDir: string;
  sink: string;
  clock: Clock;
  logger: Logger;
  /** The file is rotated to `.1` before it would grow past this (default 64 MiB). */
  maxBytes?: number;
}

export class DeadLetterFile {
  readonly path: string;
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** `{"sink":"<name>","reason":` — the same for every line. */
  readonly #prefix: string;
  #fd = -1;
  #size = 0;

  constructor(opts: DeadLetterOptions) {
    this.#dir = join(opts.dataDir, 'dead-letter');
    this.path = join(this.#dir, `${opts.sink}.ndjson`);
    this.#maxBytes = opts.maxBytes ?? DEAD_LETTER_MAX_BYTES;
    this.#clock = opts.clock;
    this.#log = opts.logger;
    this.#prefix = `{"sink":${JSON.stringify(opts.sink)},"reason":`;
  }

  /** Writes every event with one reason. Returns false when the file could not be written (logged). */
  write(events: readonly LogEvent[], reason: string): boolean {
    const head = `${this.#prefix}${JSON.stringify(reason)},"time":"${this.#time()}","event":`;
    const lines: string[] = [];
    for (const e of events) lines.push(`${head}${encodeEvent(e)}}\n`);
    return this.#append(lines);
  }

  /** Writes each event with its own reason (the items a bulk request refused). */
  writeEach(rejects: readonly { event: LogEvent; reason: string }[]): boolean {
    const time = this.#time();
    const lines: string[] = [];
    for (const r of rejects)
      lines.push(
        `${this.#prefix}${JSON.stringify(r.reason)},"time":"${time}","event":${encodeEvent(r.event)}}\n`,
      );
    return this.#append(lines);
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }

  #time(): string {
    return new Date(this.#clock.now()).toISOString();
  }

  #append(lines: string[]): boolean {
    if (lines.length === 0) return true;
    try {
      if (this.#fd < 0) this.#open();
      let pending = '';
      let pendingBytes = 0;
      for (const line of lines) {
        const n = Buffer.byteLength(line);
        if (this.#size + pendingBytes + n > this.#maxBytes && this.#size + pendingBytes > 0) {
          this.#write(pending);
          pending = '';
          pendingBytes = 0;
          this.#rotate();
        }
        pending += line;
        pendingBytes += n;
      }
      this.#write(pending);
      return true;
    } catch (err) {
      this.#log.error(
        { code: 'PILLION_ERR_LOGS_DATA_DIR', err, path: this.path, events: lines.length },
        'cannot write dead letters; these events are lost',
      );
      this.close();
      return false;
    }
  }

  #open(): void {
    mkdirSync(this.#dir, { recursive: true, mode: 0o750 });
    this.#fd = openSync(this.path, 'a', 0o640);
    this.#size = fstatSync(this.#fd).size;
  }

  #write(text: string): void {
    if (text.length === 0) return;
    const buf = Buffer.from(text);
    let done = 0;
    while (done < buf.length) done += writeSync(this.#fd, buf, done, buf.length - done);
    this.#size += buf.length;
  }

  #rotate(): void {
    closeSync(this.#fd);
    this.#fd = -1;
    renameSync(this.path, `${this.path}.1`);
    this.#open();
  }
}
