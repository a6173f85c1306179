// Follows files matched by glob patterns: one reader loop polls every open file, follows a file
// through rotation by rename (drained to its end first) and copytruncate, resumes from checkpoints
// by file identity (device, inode and a fingerprint of the first bytes), and pauses on backpressure.

import { createHash, randomBytes } from 'node:crypto';
import { close, fstat, open, read, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { TimerHandle } from '../../lib/clock.js';
import type { Series } from '../../metrics/index.js';
import type { TailSourceConfig } from '../config.js';
import type { FileIdentity, LogEvent, LogSource, SourceContext } from '../types.js';
import { Glob, globFiles } from './glob.js';
import { LineFramer } from './line-framer.js';

const readAsync = promisify(read);
const fstatAsync = promisify(fstat);
const openAsync = promisify(open);
const closeAsync = promisify(close);

/**
 * One read's size. Two buffers are shared by every file (the loop reads one file at a time): the
 * next read fills one while the last one's lines are parsed from the other.
 */
const READ_BYTES = 256 * 1024;
/** Reads of one file before the loop moves on to the next, so a busy file does not starve others. */
const READS_PER_TURN = 16;
/** The fingerprint covers this many first bytes of a file (fewer while the file is shorter). */
const FINGERPRINT_BYTES = 256;

interface TailedFile {
  key: string;
  path: string;
  fd: number;
  dev: number;
  ino: number;
  stream: string;
  identity: FileIdentity;
  /** The first bytes of the file as first read (up to FINGERPRINT_BYTES): a truncation changes them. */
  head: Buffer;
  framer: LineFramer;
  /** Stream position of the last chunk handed over (chunk.bytes counts from here). */
  chunkFrom: number;
  /** Offsets a chunk must end at (sinks ahead of the resume offset), ascending. */
  cuts: number[];
  size: number;
  /** No longer at any matched path (renamed away or deleted): drained, then let go. */
  orphan: boolean;
  /** When the file last grew, or became an orphan. */
  lastActive: number;
  lastStat: number;
  /** The last read reached the end of the file. */
  atEnd: boolean;
  lag: Series;
  /** The path whose lag series this file updates (none once it is an orphan). */
  lagPath: string | undefined;
}

interface ReadPlan {
  at: number;
  want: number;
  /** The cut point that ends this read, if one does. */
  cut: number | undefined;
}

interface Fetched {
  n: number;
  /** The file's first bytes were unchanged after the read. */
  same: boolean;
}

interface Resumable {
  stream: string;
  identity: FileIdentity;
  offset: number;
  claimed: boolean;
}

export function createTailSource(
  config: TailSourceConfig,
  ctx: SourceContext,
  parse: (text: string) => LogEvent,
): LogSource {
  return new TailSource(config, ctx, parse);
}

class TailSource implements LogSource {
  #config: TailSourceConfig;
  #ctx: SourceContext;
  #parse: (text: string) => LogEvent;
  #include: Glob[];
  #exclude: Glob[];
  /** How long a drained orphan is kept open for a writer that has not reopened its file yet. */
  #rotateWait: number;

  #files = new Map<string, TailedFile>();
  #bufs = [Buffer.allocUnsafe(READ_BYTES), Buffer.allocUnsafe(READ_BYTES)];
  #headBuf = Buffer.allocUnsafe(FINGERPRINT_BYTES);
  #resumable = new Map<string, Resumable[]>();
  #initial = true;

  #starting: Promise<void> | undefined;
  #stopped = false;
  /** Where the next turn of the loop starts, so a blocked turn does not always favour the first file. */
  #cursor = 0;
  #blocked = false;
  #rescanWanted = false;
  #nextGlob = 0;
  #loop: Promise<void> | undefined;
  #sleepTimer: TimerHandle | undefined;
  #wake: (() => void) | undefined;
  #stopSignal: Promise<void>;
  #signalStop!: () => void;

  constructor(config: TailSourceConfig, ctx: SourceContext, parse: (text: string) => LogEvent) {
    this.#config = config;
    this.#ctx = ctx;
    this.#parse = parse;
    this.#include = config.include.map((p) => new Glob(p));
    this.#exclude = config.exclude.map((p) => new Glob(p));
    this.#rotateWait = Math.max(config.globInterval, 4 * config.pollInterval);
    this.#stopSignal = new Promise((resolve) => (this.#signalStop = resolve));
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    for (const e of this.#ctx.checkpoints.list()) {
      const key = `${e.identity.dev}:${e.identity.ino}`;
      const list = this.#resumable.get(key) ?? [];
      list.push({ ...e, claimed: false });
      this.#resumable.set(key, list);
    }
    await this.#rescan();
    await this.#recoverUnmatched();
    this.#initial = false;
    if (this.#stopped) return;
    this.#loop = this.#run().catch((err: unknown) =>
      this.#ctx.logger.error({ err, source: this.#ctx.name }, 'tail source stopped unexpectedly'),
    );
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#signalStop();
    this.#wakeUp();
    await this.#starting;
    await this.#loop;
    for (const f of this.#files.values()) {
      f.framer.flushGroup();
      this.#emit(f);
      await this.#forget(f);
    }
  }

  // --- the reader loop ----------------------------------------------------------------------------

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (this.#blocked) {
        // Backpressure: no file is read until every buffer has room again.
        await Promise.race([this.#ctx.capacity(), this.#stopSignal]);
        this.#blocked = false;
        continue;
      }
      let progressed = false;
      const files = [...this.#files.values()];
      const first = files.length ? this.#cursor++ % files.length : 0;
      for (let i = 0; i < files.length && !this.#blocked && !this.#stopped; i++) {
        const f = files[(first + i) % files.length]!;
        if (this.#files.get(f.key) === f && (await this.#service(f))) progressed = true;
      }
      if (this.#stopped) return;
      if (this.#blocked) continue;
      if (this.#rescanWanted || this.#ctx.clock.now() >= this.#nextGlob) await this.#rescan();
      if (!progressed && !this.#stopped) await this.#sleep(this.#config.pollInterval);
    }
  }

  /** Reads what a file has, or checks it for truncation and rotation; true when bytes were read. */
  async #service(f: TailedFile): Promise<boolean> {
    const now = this.#ctx.clock.now();
    const statDue = now - f.lastStat >= this.#config.pollInterval;
    // An idle file costs one fstat per poll; a busy one is read without asking (and checked per poll).
    if (f.atEnd && !statDue) return false;
    if (statDue) {
      f.lastStat = now;
      let st: Stats;
      try {
        st = await fstatAsync(f.fd);
      } catch (err) {
        this.#ctx.logger.warn({ err, path: f.path }, 'cannot stat a tailed file; letting it go');
        await this.#finish(f);
        return false;
      }
      f.size = st.size;
      f.lag.value = Math.max(0, st.size - f.framer.position);
      if (st.size < f.framer.position) {
        await this.#truncated(f);
        return true;
      }
      if (st.size === f.framer.position) {
        f.atEnd = true;
        await this.#atEnd(f, now);
        return false;
      }
    }
    return (await this.#readSome(f)) > 0;
  }

  async #readSome(f: TailedFile): Promise<number> {
    let total = 0;
    let plan = this.#plan(f, f.framer.position);
    let k = 0;
    let pending: Promise<Fetched> | undefined = this.#fetch(f, this.#bufs[k]!, plan);
    try {
      for (let i = 0; ; i++) {
        const r: Fetched = await pending!;
        pending = undefined;
        if (r.n === 0 || this.#stopped) {
          f.atEnd = r.n === 0;
          break;
        }
        if (!r.same) {
          await this.#truncated(f);
          return total + 1;
        }
        // Start the next read before parsing this one, so the two overlap; it is dropped unread if
        // the source is blocked meanwhile (its bytes are read again later).
        const full = r.n === plan.want;
        const next = full && i + 1 < READS_PER_TURN ? this.#plan(f, plan.at + r.n) : undefined;
        const data = this.#bufs[k]!.subarray(0, r.n);
        if (next) {
          k ^= 1;
          pending = this.#fetch(f, this.#bufs[k]!, next);
        }
        total += r.n;
        this.#ctx.stats.bytes.value += r.n;
        f.lastActive = this.#ctx.clock.now();
        this.#pushCapped(f, data);
        if (f.framer.position > f.size) f.size = f.framer.position;
        f.lag.value = f.size - f.framer.position;
        // A sink acknowledged up to here: end a chunk exactly here so it can skip what it has.
        if (plan.cut !== undefined && f.framer.position === plan.cut) f.framer.flushGroup();
        while (f.cuts.length > 0 && f.cuts[0]! <= f.framer.position) f.cuts.shift();
        this.#emit(f);
        if (!full) {
          f.atEnd = true;
          break;
        }
        f.atEnd = false;
        if (!next || this.#blocked || this.#stopped) break;
        plan = next;
      }
    } finally {
      // A read still in flight writes into a shared buffer: let it finish before anyone reuses it.
      if (pending) await pending.catch(() => undefined);
    }
    return total;
  }

  /** Where the next read starts and how much it takes: up to READ_BYTES, ending at the next cut point. */
  #plan(f: TailedFile, at: number): ReadPlan {
    let cut: number | undefined;
    for (const c of f.cuts) {
      if (c > at) {
        cut = c;
        break;
      }
    }
    return { at, want: cut === undefined ? READ_BYTES : Math.min(READ_BYTES, cut - at), cut };
  }

  /**
   * Reads, then checks the file's first bytes: if they are unchanged after the read, the file had
   * not been truncated when the read happened, so what was read is the old content's continuation.
   */
  async #fetch(f: TailedFile, buf: Buffer, plan: ReadPlan): Promise<Fetched> {
    const n = (await readAsync(f.fd, buf, 0, plan.want, plan.at)).bytesRead;
    if (n === 0) return { n, same: true };
    return { n, same: await this.#sameHead(f) };
  }

  /** The file's first bytes still match what was read at first; grows the fingerprint meanwhile. */
  async #sameHead(f: TailedFile): Promise<boolean> {
    const n = (await readAsync(f.fd, this.#headBuf, 0, FINGERPRINT_BYTES, 0)).bytesRead;
    const known = f.head.length;
    if (n < known || this.#headBuf.compare(f.head, 0, known, 0, known) !== 0) return false;
    if (n > known) {
      f.head = Buffer.from(this.#headBuf.subarray(0, n));
      f.identity = identityOf(f.path, f.dev, f.ino, f.head);
      this.#ctx.checkpoints.register(f.stream, f.identity);
    }
    return true;
  }

  /** At the end of a file: an orphan is let go after rotateWait; a file at a path checks that path. */
  async #atEnd(f: TailedFile, now: number): Promise<void> {
    if (f.orphan) {
      if (now - f.lastActive >= this.#rotateWait) await this.#finish(f);
      return;
    }
    // Rotation shows as another file (or none) at the path: rescan now rather than at globInterval.
    try {
      const st = await stat(f.path);
      if (st.ino === f.ino && st.dev === f.dev) return;
    } catch {
      // Gone: the rescan marks it an orphan.
    }
    this.#rescanWanted = true;
  }

  /** Copytruncate: what was read becomes events, then the file is read again from 0 as a new stream. */
  async #truncated(f: TailedFile): Promise<void> {
    f.framer.end(true);
    this.#emit(f);
    this.#ctx.checkpoints.release(f.stream, f.framer.committedOffset);
    this.#ctx.logger.info(
      { path: f.path, source: this.#ctx.name },
      'file was truncated; reading it from the start',
    );
    const head = await this.#readHead(f.fd);
    f.head = head;
    f.stream = this.#newStream(f.dev, f.ino);
    f.identity = identityOf(f.path, f.dev, f.ino, head);
    this.#ctx.checkpoints.register(f.stream, f.identity);
    f.framer.reset(0);
    f.chunkFrom = 0;
    f.cuts = [];
    f.atEnd = false;
    f.lastStat = 0;
  }

  /** A file is done (drained orphan, or unreadable): its last line becomes an event, and it is let go. */
  async #finish(f: TailedFile): Promise<void> {
    f.framer.end();
    this.#emit(f);
    this.#ctx.checkpoints.release(f.stream, f.framer.committedOffset);
    await this.#forget(f);
  }

  async #forget(f: TailedFile): Promise<void> {
    this.#files.delete(f.key);
    f.framer.close();
    this.#dropLag(f);
    try {
      await closeAsync(f.fd);
    } catch {
      // Already closed.
    }
  }

  /**
   * Pushes a read into the framer, handing over a chunk whenever it holds maxChunkEvents, so no
   * chunk is larger than a sink's batch (see SourceContext.maxChunkEvents). A record never spans
   * more newlines than it has events, so cutting by newlines keeps chunks within the cap.
   */
  #pushCapped(f: TailedFile, data: Buffer): void {
    const cap = this.#ctx.maxChunkEvents;
    let from = 0;
    while (from < data.length) {
      let room = cap - f.framer.readyCount;
      let end = from;
      while (room > 0) {
        const nl = data.indexOf(10, end);
        if (nl < 0) {
          end = data.length;
          break;
        }
        end = nl + 1;
        room--;
      }
      if (end === from) end = data.length;
      f.framer.push(data.subarray(from, end));
      from = end;
      if (f.framer.readyCount >= cap) this.#emit(f);
    }
  }

  #emit(f: TailedFile): void {
    if (f.framer.readyCount === 0) return;
    const events = f.framer.take();
    const pos = f.framer.position;
    const bytes = pos - f.chunkFrom;
    f.chunkFrom = pos;
    this.#ctx.stats.events.value += events.length;
    const more = this.#ctx.emit({
      source: this.#ctx.name,
      events,
      bytes,
      stream: f.stream,
      endOffset: f.framer.committedOffset,
    });
    if (!more) this.#blocked = true;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = this.#ctx.clock.setTimeout(() => this.#wakeUp(), ms);
    });
  }

  #wakeUp(): void {
    this.#sleepTimer?.cancel();
    this.#sleepTimer = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  // --- discovery ----------------------------------------------------------------------------------

  async #rescan(): Promise<void> {
    this.#rescanWanted = false;
    this.#nextGlob = this.#ctx.clock.now() + this.#config.globInterval;
    const paths = await globFiles(this.#include, this.#exclude);
    // Device and inode → the paths that reach it now (several with hard links or symbolic links).
    const byKey = new Map<string, string[]>();
    for (const path of paths) {
      if (this.#stopped) return;
      try {
        const st = await stat(path);
        if (!st.isFile()) continue;
        const key = `${st.dev}:${st.ino}`;
        const list = byKey.get(key);
        if (list) list.push(path);
        else byKey.set(key, [path]);
      } catch {
        // Gone between the listing and the stat: the next scan settles it.
      }
    }
    const seen = new Set<string>();
    for (const [key, list] of byKey) {
      if (this.#stopped) return;
      const known = this.#files.get(key);
      if (known === undefined) {
        const f = await this.#openFile(list[0]!, false);
        if (f) seen.add(f.key);
        continue;
      }
      seen.add(key);
      // Renamed (rotation to a name still matched): the file follows its new name, and the file
      // that took its old name is another file.
      if (!list.includes(known.path)) this.#moved(known, list[0]!);
      else if (known.orphan) {
        known.lagPath = known.path;
        known.lag = this.#ctx.stats.lag(known.path);
      }
      known.orphan = false;
    }
    const now = this.#ctx.clock.now();
    for (const f of this.#files.values()) {
      if (!seen.has(f.key) && !f.orphan) {
        // Renamed away or deleted: read to its end, then let go after rotateWait. Its lag series
        // belongs to its old path, which the file now there reports on.
        f.orphan = true;
        f.lastActive = now;
        this.#dropLag(f);
        f.lag = { labels: {}, value: 0 };
      }
    }
  }

  #moved(f: TailedFile, path: string): void {
    this.#dropLag(f);
    f.path = path;
    f.framer.path = path;
    f.lagPath = path;
    f.lag = this.#ctx.stats.lag(path);
    f.lag.value = Math.max(0, f.size - f.framer.position);
    f.identity = { ...f.identity, path };
    this.#ctx.checkpoints.register(f.stream, f.identity);
  }

  /** Stops reporting a file's lag, unless another file now reports on the same path. */
  #dropLag(f: TailedFile): void {
    const path = f.lagPath;
    if (path === undefined) return;
    f.lagPath = undefined;
    for (const o of this.#files.values()) if (o !== f && o.lagPath === path) return;
    this.#ctx.stats.forgetLag(path);
  }

  /**
   * Starts following a file: resumes from its checkpoint when one matches its identity, else reads
   * from startAt (files present at start) or from the beginning (files that appear later).
   */
  async #openFile(path: string, orphan: boolean, resume?: Resumable): Promise<TailedFile | undefined> {
    let fd: number;
    let st: Stats;
    try {
      fd = await openAsync(path, 'r');
      st = await fstatAsync(fd);
    } catch (err) {
      this.#ctx.logger.warn({ err, path, source: this.#ctx.name }, 'cannot open a file to tail');
      return undefined;
    }
    const key = `${st.dev}:${st.ino}`;
    if (this.#files.has(key)) {
      await closeAsync(fd).catch(() => undefined);
      return undefined;
    }
    const head = await this.#readHead(fd);
    const match = resume ?? this.#claim(key, head);
    let stream: string;
    let offset: number;
    let cuts: number[] = [];
    if (match && match.offset <= st.size) {
      stream = match.stream;
      offset = match.offset;
      cuts = this.#ctx.checkpoints.cutPoints(stream);
    } else {
      // A checkpoint past the end means the file was truncated while we were away: start over.
      if (match) this.#ctx.checkpoints.release(match.stream, match.offset);
      stream = this.#newStream(st.dev, st.ino);
      offset = this.#initial && this.#config.startAt === 'end' && !match ? st.size : 0;
    }
    const identity = identityOf(path, st.dev, st.ino, head);
    this.#ctx.checkpoints.register(stream, identity);
    const now = this.#ctx.clock.now();
    const f: TailedFile = {
      key,
      path,
      fd,
      dev: st.dev,
      ino: st.ino,
      stream,
      identity,
      head,
      framer: undefined as unknown as LineFramer,
      chunkFrom: offset,
      cuts,
      size: st.size,
      orphan,
      lastActive: now,
      lastStat: 0,
      atEnd: false,
      lag: orphan ? { labels: {}, value: 0 } : this.#ctx.stats.lag(path),
      lagPath: orphan ? undefined : path,
    };
    f.framer = new LineFramer({
      format: this.#config.format,
      maxLineBytes: this.#config.maxLineBytes,
      multiline: this.#config.multiline,
      parse: this.#parse,
      clock: this.#ctx.clock,
      stats: this.#ctx.stats,
      pathField: this.#config.pathField,
      path,
      offset,
      // A multiline group completed by its timeout is handed over at once (one closure per file).
      onReady: () => {
        if (this.#files.get(key) === f) this.#emit(f);
      },
    });
    f.lag.value = Math.max(0, st.size - offset);
    this.#files.set(key, f);
    if (offset > 0 && !match) {
      // Started at the end: an empty chunk ending there moves every sink's checkpoint to it once
      // acknowledged, so a restart before the first line does not read the file from 0.
      const more = this.#ctx.emit({
        source: this.#ctx.name,
        events: [],
        bytes: 0,
        stream,
        endOffset: offset,
      });
      if (!more) this.#blocked = true;
    }
    return f;
  }

  /** The newest checkpoint of this device and inode whose fingerprint matches the file's first bytes. */
  #claim(key: string, head: Buffer): Resumable | undefined {
    const list = this.#resumable.get(key);
    if (!list) return undefined;
    let found: Resumable | undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i]!;
      if (r.claimed) continue;
      const len = r.identity.fingerprintLength;
      if (head.length >= len && fingerprint(head.subarray(0, len)) === r.identity.fingerprint) {
        found = r;
        break;
      }
    }
    if (found) found.claimed = true;
    return found;
  }

  /**
   * Checkpointed files no pattern matched at start: a file rotated away while we were not running
   * is looked for beside its old path (by inode and fingerprint) and drained; the rest are released.
   */
  async #recoverUnmatched(): Promise<void> {
    const byDir = new Map<string, Resumable[]>();
    for (const list of this.#resumable.values()) {
      for (const r of list) {
        if (r.claimed) continue;
        const dir = dirname(r.identity.path);
        const l = byDir.get(dir) ?? [];
        l.push(r);
        byDir.set(dir, l);
      }
    }
    for (const [dir, list] of byDir) {
      let names: string[] = [];
      try {
        names = await readdir(dir);
      } catch {
        // The directory is gone too.
      }
      for (const name of names) {
        if (list.every((r) => r.claimed)) break;
        const path = join(dir, name);
        let st: Stats;
        try {
          st = await stat(path);
        } catch {
          continue;
        }
        if (!st.isFile() || this.#files.has(`${st.dev}:${st.ino}`)) continue;
        const candidates = list.filter(
          (r) => !r.claimed && r.identity.dev === st.dev && r.identity.ino === st.ino,
        );
        if (candidates.length === 0) continue;
        let fd: number;
        try {
          fd = await openAsync(path, 'r');
        } catch {
          continue;
        }
        const head = await this.#readHead(fd).finally(() => closeAsync(fd).catch(() => undefined));
        const match = this.#claim(`${st.dev}:${st.ino}`, head);
        if (match) await this.#openFile(path, true, match);
      }
    }
    for (const list of this.#resumable.values())
      for (const r of list) if (!r.claimed) this.#ctx.checkpoints.release(r.stream, r.offset);
    this.#resumable.clear();
  }

  async #readHead(fd: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(FINGERPRINT_BYTES);
    try {
      const n = (await readAsync(fd, buf, 0, FINGERPRINT_BYTES, 0)).bytesRead;
      return buf.subarray(0, n);
    } catch {
      return Buffer.alloc(0);
    }
  }

  /** A stream key: the source, the file's device and inode, and a random part so a reused inode differs. */
  #newStream(dev: number, ino: number): string {
    return `${this.#ctx.name}:${dev}:${ino}:${randomBytes(6).toString('hex')}`;
  }
}

function fingerprint(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

function identityOf(path: string, dev: number, ino: number, head: Buffer): FileIdentity {
  return { path, dev, ino, fingerprint: fingerprint(head), fingerprintLength: head.length };
}
