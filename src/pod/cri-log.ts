// Container output in the kubelet's CRI log format, one record per line:
//   2026-11-21T07:35:46.123456789Z stdout F the line
// A line longer than 16 KiB is split into P(artial) records ending with an F(ull) one, as
// containerd does, so log collectors can join them. Files rotate by size the kubelet's way:
// N.log is renamed to N.log.<YYYYMMDD-hhmmss[-k]> and the oldest rotated files are removed.

import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { utf8Boundary } from '../lib/utf8.js';

export type Stream = 'stdout' | 'stderr';
export const MAX_RECORD = 16 * 1024;
/** How much of one endless line is kept for the terminal copy (the file keeps it all). */
const MAX_EARLY = 1024 * 1024;
const NEWLINE = Buffer.from('\n');

export interface CriLogOptions {
  maxBytes: number;
  maxFiles: number;
  /** Called with each complete line (partials joined), for streaming to a terminal. */
  onLine?: ((stream: Stream, line: string) => void) | undefined;
  now?: () => bigint;
}

export class CriLogWriter {
  #path: string;
  #opts: CriLogOptions;
  #fd: number;
  #size: number;
  #pending: Record<Stream, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  // Content of a long line already written as partial records, so onLine still sees it whole.
  #early: Record<Stream, string> = { stdout: '', stderr: '' };
  #closed = false;

  constructor(path: string, opts: CriLogOptions) {
    this.#path = path;
    this.#opts = opts;
    this.#fd = openSync(path, 'a', 0o640);
    this.#size = statSync(path).size;
  }

  write(stream: Stream, chunk: Buffer): void {
    if (this.#closed) return;
    let data = this.#pending[stream].length ? Buffer.concat([this.#pending[stream], chunk]) : chunk;
    const out: Buffer[] = [];
    for (;;) {
      const nl = data.indexOf(10);
      if (nl < 0) break;
      this.#records(stream, data.subarray(0, nl), out);
      data = data.subarray(nl + 1);
    }
    // A long line with no newline yet: emit its full-size pieces as partials now, keep the rest.
    while (data.length >= MAX_RECORD) {
      const n = utf8Boundary(data, MAX_RECORD);
      const piece = data.subarray(0, n);
      out.push(this.#record(stream, 'P', piece));
      if (this.#opts.onLine && this.#early[stream].length < MAX_EARLY)
        this.#early[stream] += piece.toString('utf8');
      data = data.subarray(n);
    }
    this.#pending[stream] = Buffer.from(data);
    if (out.length) this.#append(Buffer.concat(out));
  }

  /** Writes what is left of unterminated lines (at process exit) and closes the file. */
  close(): void {
    if (this.#closed) return;
    const out: Buffer[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.#pending[stream].length) this.#records(stream, this.#pending[stream], out);
      this.#pending[stream] = Buffer.alloc(0);
    }
    if (out.length) this.#append(Buffer.concat(out));
    this.#closed = true;
    closeSync(this.#fd);
  }

  #records(stream: Stream, line: Buffer, out: Buffer[]): void {
    let rest = line;
    while (rest.length > MAX_RECORD) {
      const n = utf8Boundary(rest, MAX_RECORD);
      out.push(this.#record(stream, 'P', rest.subarray(0, n)));
      rest = rest.subarray(n);
    }
    out.push(this.#record(stream, 'F', rest));
    if (this.#opts.onLine) {
      this.#opts.onLine(stream, this.#early[stream] + line.toString('utf8'));
      this.#early[stream] = '';
    }
  }

  // Bytes go to the file as they came: a record never re-encodes the container's output.
  #record(stream: Stream, tag: 'P' | 'F', content: Buffer): Buffer {
    const head = Buffer.from(`${rfc3339Nano(this.#opts.now?.() ?? nowNs())} ${stream} ${tag} `);
    return Buffer.concat([head, content, NEWLINE]);
  }

  #append(buf: Buffer): void {
    if (this.#size > 0 && this.#size + buf.length > this.#opts.maxBytes) this.#rotate();
    writeSync(this.#fd, buf);
    this.#size += buf.length;
  }

  #rotate(): void {
    closeSync(this.#fd);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    let target = `${this.#path}.${stamp}`;
    for (let k = 1; existsSync(target); k++) target = `${this.#path}.${stamp}-${k}`;
    renameSync(this.#path, target);
    const rotated = rotatedFiles(this.#path);
    for (const old of rotated.slice(0, Math.max(0, rotated.length - (this.#opts.maxFiles - 1))))
      unlinkSync(old);
    this.#fd = openSync(this.#path, 'a', 0o640);
    this.#size = 0;
  }
}

/** Rotated files of a log, oldest first. */
export function rotatedFiles(path: string): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix))
    .sort(compareRotated)
    .map((f) => join(dir, f));
}

function compareRotated(a: string, b: string): number {
  const key = (s: string) => s.replace(/-(\d+)$/, (_, k: string) => `-${k.padStart(6, '0')}`);
  return key(a).localeCompare(key(b));
}

export interface CriRecord {
  time: string;
  stream: Stream;
  partial: boolean;
  content: string;
}

/** Parses one CRI record; undefined for a line that is not one. */
export function parseCriLine(line: string): CriRecord | undefined {
  const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1]!, stream: m[2] as Stream, partial: m[3] === 'P', content: m[4]! };
}

/** The log of one container run as lines (partials joined), rotated files first. */
export function readCriLog(path: string): { time: string; stream: Stream; line: string }[] {
  const out: { time: string; stream: Stream; line: string }[] = [];
  const partial: Record<Stream, string> = { stdout: '', stderr: '' };
  for (const file of [...rotatedFiles(path), path]) {
    if (!existsSync(file)) continue;
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      const r = parseCriLine(raw);
      if (!r) continue;
      if (r.partial) {
        partial[r.stream] += r.content;
        continue;
      }
      out.push({ time: r.time, stream: r.stream, line: partial[r.stream] + r.content });
      partial[r.stream] = '';
    }
  }
  return out;
}

// Wall-clock nanoseconds: Date gives the epoch, hrtime the digits below the millisecond.
const originNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
function nowNs(): bigint {
  return originNs + process.hrtime.bigint();
}

export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}Z`;
}
