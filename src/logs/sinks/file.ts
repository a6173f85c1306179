// The file sink: appends one JSON object per line, one write per batch, and rotates by size to
// `<path>.1` ... `<path>.<maxFiles>`. A failed write is undone (truncated away) so a retry does not
// leave a torn line in front of the batch it writes again.

import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FileSinkConfig } from '../config.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import { encodeLines } from './encode.js';

export function createFileDriver(cfg: FileSinkConfig): SinkDriver {
  return new FileDriver(cfg);
}

class FileDriver implements SinkDriver {
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  #fh: FileHandle | undefined;
  #ino = 0;
  #size = 0;
  /** Sends run one after another: each write must know the file's size before it. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(cfg: FileSinkConfig) {
    this.#path = cfg.path;
    this.#maxBytes = cfg.maxBytes;
    this.#maxFiles = cfg.maxFiles;
  }

  send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    const run = this.#queue.then(() => this.#send(events, signal));
    this.#queue = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    await this.#queue;
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }

  async #send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    if (events.length === 0) return { kind: 'ok' };
    if (signal.aborted) return { kind: 'failed', retry: true, reason: 'aborted before writing' };
    const buf = encodeLines(events);
    let step = 'open';
    try {
      await this.#ensureOpen();
      // Rotate before a write that would pass maxBytes, so files stay under it; a batch larger
      // than maxBytes alone still goes whole into a fresh file.
      if (this.#size > 0 && this.#size + buf.length > this.#maxBytes) {
        step = 'rotate';
        await this.#rotate();
        step = 'open';
        await this.#ensureOpen();
      }
      step = 'write';
      await this.#write(buf);
      return { kind: 'ok' };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return {
        kind: 'failed',
        retry: true,
        reason: `file sink: cannot ${step} ${this.#path}: ${e.code ? `${e.code} ` : ''}(${e.message})`,
      };
    }
  }

  async #write(buf: Buffer): Promise<void> {
    const fh = this.#fh!;
    const start = this.#size;
    let off = 0;
    try {
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
        off += bytesWritten;
      }
    } catch (err) {
      // Cut what part of the batch reached the file: the retry writes all of it again.
      if (off > 0) await fh.truncate(start).catch(() => {});
      throw err;
    }
    this.#size = start + buf.length;
  }

  /** Opens the file (again, when something moved or deleted it) for appending. */
  async #ensureOpen(): Promise<void> {
    if (this.#fh) {
      const st = await stat(this.#path).catch(() => undefined);
      if (st && st.ino === this.#ino) return;
      const old = this.#fh;
      this.#fh = undefined;
      await old.close().catch(() => {});
    }
    await mkdir(dirname(this.#path), { recursive: true });
    const fh = await open(this.#path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o640);
    try {
      const st = await fh.stat();
      this.#ino = st.ino;
      this.#size = st.size;
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.#fh = fh;
  }

  /** path → path.1 → path.2 ...; the one past maxFiles is deleted. */
  async #rotate(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
    await rm(`${this.#path}.${this.#maxFiles}`, { force: true });
    for (let i = this.#maxFiles - 1; i >= 1; i--) {
      await rename(`${this.#path}.${i}`, `${this.#path}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    await rename(this.#path, `${this.#path}.1`);
  }
}
