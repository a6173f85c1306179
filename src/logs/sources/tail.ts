// Follows files matched by glob patterns: one reader loop reads every open file, follows a file
// through rotation by rename (drained to its end first) and copytruncate, resumes from checkpoints
// by file identity (device, inode, a fingerprint of the first bytes, a mark of the bytes before
// the read position), and pauses on backpressure. The patterns' directories are watched (inotify)
// so new and renamed files are seen at once; polling stays as the fallback. What can still be lost
// is counted and logged (see loss.ts and docs/logs.md).

import { randomBytes } from 'node:crypto';
import { close, fstat, open, read, type Stats } from 'node:fs';
import { readdir, readlink, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { TimerHandle } from '../../lib/clock.js';
import { DirWatcher } from '../../lib/dir-watcher.js';
import type { Series } from '../../metrics/index.js';
import type { TailSourceConfig } from '../config.js';
import { LossLog } from '../loss.js';
import type { FileIdentity, LogEvent, LogSource, SourceContext } from '../types.js';
import {
  FINGERPRINT_BYTES,
  fingerprint,
  identityOf,
  isRotatedName,
  looksCompressed,
  MARK_BYTES,
  markOf,
  verifyResume,
} from './file-identity.js';
import { Glob, globFiles, isAbsent, type WalkErrors } from './glob.js';
import { LineFramer } from './line-framer.js';
import { type Resumable, Resumables } from './resumables.js';
import { UnreadablePaths } from './unreadable-paths.js';

const readAsync = promisify(read);
const fstatAsync = promisify(fstat);
const openAsync = promisify(open);
const closeAsync = promisify(close);

/**
 * One read's size. Two buffers are shared by every file (the loop reads one file at a time): the
 * next read fills one while the last one's lines are parsed from the other. Each read also takes
 * the MARK_BYTES before its start again, to check they are still what was read.
 */
const READ_BYTES = 256 * 1024;
/** Reads of one file before the loop moves on to the next, so a busy file does not starve others. */
const READS_PER_TURN = 16;
/** A source paused this long shows its backlog in /readyz (shorter pauses are a sink's normal pace). */
const BACKLOG_REASON_AFTER_MS = 1000;

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
  /** The size last seen while the file still held what was read (a rewritten file's is not it). */
  size: number;
  /** No longer at any matched path (renamed away or deleted): drained, then let go. */
  orphan: boolean;
  /** When the file last grew, or became an orphan. */
  lastActive: number;
  lastStat: number;
  /** The last read reached the end of the file. */
  atEnd: boolean;
  lag: Series;
  /** The path whose lag series this file updates (none while it is an orphan nobody can name). */
  lagPath: string | undefined;
  /** The bytes just before framer.position, as read (the last markLen of MARK_BYTES): see ReadMark. */
  mark: Buffer;
  markLen: number;
  /** A write event came (the directory watch): read again even if the last read found the end. */
  poked: boolean;
}

interface ReadPlan {
  at: number;
  want: number;
  /** The cut point that ends this read, if one does. */
  cut: number | undefined;
}

interface Fetched {
  /** Bytes read, the `pre` bytes before plan.at included. */
  got: number;
  /** How many bytes before plan.at were read again, to compare with the file's mark. */
  pre: number;
  /** The file's first bytes were unchanged after the read. */
  same: boolean;
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
  #loss: LossLog;
  #watcher: DirWatcher;

  #files = new Map<string, TailedFile>();
  /** The same files by path, for the directory watch's events. */
  #byPath = new Map<string, TailedFile>();
  #bufs = [Buffer.allocUnsafe(MARK_BYTES + READ_BYTES), Buffer.allocUnsafe(MARK_BYTES + READ_BYTES)];
  #headBuf = Buffer.allocUnsafe(FINGERPRINT_BYTES);
  #markBuf = Buffer.allocUnsafe(MARK_BYTES);
  /** Checkpoints not claimed by an open file yet. */
  #resumable: Resumables;
  /** Rotated files never followed, by identity, with their size when last looked at (see #adoptRotated). */
  #candidates = new Map<string, number>();
  #unreadable: UnreadablePaths;
  #initial = true;

  #starting: Promise<void> | undefined;
  #stopped = false;
  /** Where the next turn of the loop starts, so a blocked turn does not always favour the first file. */
  #cursor = 0;
  #blocked = false;
  /** While blocked: whether the pipeline was asked for room, and whether it came. */
  #askedForRoom = false;
  #room = false;
  #pausedSince: number | undefined;
  #rescanWanted = false;
  #nextGlob = 0;
  #loop: Promise<void> | undefined;
  #sleepTimer: TimerHandle | undefined;
  #wake: (() => void) | undefined;
  /** A wake-up came while the loop was not asleep: its next sleep returns at once. */
  #wakePending = false;

  constructor(config: TailSourceConfig, ctx: SourceContext, parse: (text: string) => LogEvent) {
    this.#config = config;
    this.#ctx = ctx;
    this.#parse = parse;
    this.#include = config.include.map((p) => new Glob(p));
    this.#exclude = config.exclude.map((p) => new Glob(p));
    this.#rotateWait = Math.max(Math.min(config.globInterval, 1000), 4 * config.pollInterval);
    this.#loss = new LossLog({
      source: ctx.name,
      series: (reason) => ctx.stats.lostBytes(reason),
      logger: ctx.logger,
      clock: ctx.clock,
    });
    this.#resumable = new Resumables(ctx, this.#loss);
    this.#unreadable = new UnreadablePaths(ctx);
    this.#watcher = new DirWatcher({
      onEvent: (dir, name, kind) => this.#watched(dir, name, kind),
      onUnwatchable: (dir, err) =>
        ctx.logger.info(
          { dir, err: err.message, source: ctx.name },
          'cannot watch a directory for new files; it is polled every globInterval instead',
        ),
    });
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#resumable.load(this.#ctx.checkpoints.list());
    // Watch first: a file renamed while the start-up scan runs raises an event, not a miss.
    this.#syncWatches();
    await this.#rescan();
    this.#initial = false;
    if (this.#stopped) return;
    this.#loop = this.#run().catch((err: unknown) =>
      this.#ctx.logger.error({ err, source: this.#ctx.name }, 'tail source stopped unexpectedly'),
    );
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#watcher.close();
    this.#wakeUp();
    await this.#starting;
    await this.#loop;
    for (const f of [...this.#files.values()]) {
      // A last line without its newline goes out now, flagged partial, if the file has nothing
      // more; otherwise the read simply stopped inside a line and it is read whole next time.
      try {
        if ((await fstatAsync(f.fd)).size === f.framer.position) f.framer.flushPartial();
      } catch {
        // Unreadable now: what it holds stays unsent, and is read again from the checkpoint.
      }
      f.framer.flushGroup();
      this.#emit(f);
      this.#progress(f);
      await this.#forget(f);
    }
  }

  /** What /readyz should say about this source: a backlog while paused, paths it cannot read. */
  health(): string[] {
    const out: string[] = [];
    const name = this.#ctx.name;
    const now = this.#ctx.clock.now();
    if (this.#pausedSince !== undefined && now - this.#pausedSince >= BACKLOG_REASON_AFTER_MS) {
      let bytes = 0;
      let files = 0;
      for (const f of this.#files.values()) {
        const lag = f.size - f.framer.position;
        if (lag > 0) {
          bytes += lag;
          files++;
        }
      }
      if (bytes > 0)
        out.push(
          `logs source "${name}" has ${formatBytes(bytes)} not read yet in ${files} file${files === 1 ? '' : 's'}, paused ${Math.round((now - this.#pausedSince) / 1000)}s for its sinks`,
        );
    }
    const unreadable = this.#unreadable.reason();
    if (unreadable !== undefined) out.push(unreadable);
    return out;
  }

  // --- the reader loop ----------------------------------------------------------------------------

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (this.#blocked) {
        await this.#paused();
        continue;
      }
      let progressed = false;
      const files = [...this.#files.values()];
      const first = files.length ? this.#cursor++ % files.length : 0;
      for (let i = 0; i < files.length && !this.#blocked && !this.#stopped; i++) {
        const f = files[(first + i) % files.length]!;
        if (this.#files.get(f.key) === f && (await this.#service(f))) progressed = true;
        // A file that appeared is looked at between two files, not after a whole turn.
        if (this.#rescanWanted && !this.#blocked && !this.#stopped && (await this.#rescan()))
          progressed = true;
      }
      if (this.#stopped) return;
      if (this.#blocked) continue;
      // A file found by the scan is read now, not after a poll's sleep.
      if ((this.#rescanWanted || this.#ctx.clock.now() >= this.#nextGlob) && (await this.#rescan()))
        progressed = true;
      if (!progressed && !this.#stopped) await this.#sleep(this.#config.pollInterval);
    }
  }

  /**
   * Backpressure: no file is read until every buffer has room again. Meanwhile every file is still
   * checked each pollInterval, so its lag shows how far behind the source is (and a truncation is
   * counted when it happens), and new files are found and checkpointed.
   */
  async #paused(): Promise<void> {
    this.#pausedSince ??= this.#ctx.clock.now();
    if (!this.#askedForRoom) {
      this.#askedForRoom = true;
      void this.#ctx.capacity().then(() => {
        this.#room = true;
        this.#wakeUp();
      });
    }
    await this.#sleep(this.#config.pollInterval);
    if (this.#stopped) return;
    if (this.#room) {
      this.#room = false;
      this.#askedForRoom = false;
      this.#blocked = false;
      this.#pausedSince = undefined;
      return;
    }
    const now = this.#ctx.clock.now();
    for (const f of [...this.#files.values()]) {
      if (this.#stopped) return;
      if (this.#files.get(f.key) !== f || now - f.lastStat < this.#config.pollInterval) continue;
      f.lastStat = now;
      await this.#check(f);
    }
    if (this.#rescanWanted || now >= this.#nextGlob) await this.#rescan();
  }

  /** Reads what a file has, or checks it for truncation and rotation; true when bytes were read. */
  async #service(f: TailedFile): Promise<boolean> {
    const now = this.#ctx.clock.now();
    const statDue = now - f.lastStat >= this.#config.pollInterval;
    // An idle file costs one fstat per poll; a busy one is read without asking (and checked per poll).
    if (f.atEnd && !statDue) return false;
    if (statDue) {
      f.lastStat = now;
      const c = await this.#check(f);
      if (c === 'gone') return false;
      if (c === 'reset') return true;
      if (c === 'end') {
        f.atEnd = true;
        await this.#atEnd(f, now);
        return false;
      }
    }
    return (await this.#readSome(f)) > 0;
  }

  /**
   * Looks at a file's size: shorter than what was read means it was truncated; grown or shrunk, its
   * mark is checked before the new size is believed to be more of the same content. Updates lag.
   */
  async #check(f: TailedFile): Promise<'gone' | 'reset' | 'end' | 'more'> {
    let st: Stats;
    try {
      st = await fstatAsync(f.fd);
    } catch (err) {
      this.#ctx.logger.warn(
        { err, path: f.path, source: this.#ctx.name },
        'cannot stat a tailed file; letting it go',
      );
      this.#ctx.stats.abandoned('unreadable').value++;
      this.#loss.lost('gone', Math.max(0, f.size - f.framer.position), { path: f.path });
      await this.#finish(f);
      return 'gone';
    }
    const pos = f.framer.position;
    if (st.size < pos) {
      await this.#reread(f, 'truncated');
      return 'reset';
    }
    if (st.size !== f.size && f.markLen > 0 && !(await this.#markHolds(f))) {
      await this.#reread(f, 'rewritten');
      return 'reset';
    }
    f.size = st.size;
    f.lag.value = st.size - pos;
    return st.size === pos ? 'end' : 'more';
  }

  /** The bytes before the read position are still the ones that were read. */
  async #markHolds(f: TailedFile): Promise<boolean> {
    const len = f.markLen;
    try {
      const n = (await readAsync(f.fd, this.#markBuf, 0, len, f.framer.position - len)).bytesRead;
      return n === len && this.#markBuf.compare(f.mark, 0, len, 0, len) === 0;
    } catch {
      return false;
    }
  }

  async #readSome(f: TailedFile): Promise<number> {
    f.poked = false;
    let total = 0;
    let plan = this.#plan(f, f.framer.position);
    let k = 0;
    let pending: Promise<Fetched> | undefined = this.#fetch(f, this.#bufs[k]!, plan);
    try {
      for (let i = 0; ; i++) {
        const r: Fetched = await pending!;
        pending = undefined;
        const buf = this.#bufs[k]!;
        // The bytes before the read must still be those read last: a file rewritten in place with
        // the same first bytes (and longer than before) is caught here, not read from the middle.
        const m = f.markLen;
        if (r.got < r.pre || (m > 0 && buf.compare(f.mark, 0, m, r.pre - m, r.pre) !== 0)) {
          await this.#reread(f, r.got < r.pre || !r.same ? 'truncated' : 'rewritten');
          return total + 1;
        }
        const n = r.got - r.pre;
        if (n === 0 || this.#stopped) {
          f.atEnd = n === 0;
          break;
        }
        if (!r.same) {
          await this.#reread(f, 'truncated');
          return total + 1;
        }
        // Start the next read before parsing this one, so the two overlap; it is dropped unread if
        // the source is blocked meanwhile (its bytes are read again later).
        const full = n === plan.want;
        const next = full && i + 1 < READS_PER_TURN ? this.#plan(f, plan.at + n) : undefined;
        const data = buf.subarray(r.pre, r.pre + n);
        if (next) {
          k ^= 1;
          pending = this.#fetch(f, this.#bufs[k]!, next);
        }
        // Stops early when the pipeline says it is full: the rest is read again after the pause.
        const pushed = this.#pushCapped(f, data);
        total += pushed;
        this.#ctx.stats.bytes.value += pushed;
        f.lastActive = this.#ctx.clock.now();
        this.#advanceMark(f, pushed === n ? data : data.subarray(0, pushed));
        if (f.framer.position > f.size) f.size = f.framer.position;
        f.lag.value = f.size - f.framer.position;
        // A sink acknowledged up to here: end a chunk exactly here so it can skip what it has.
        if (plan.cut !== undefined && f.framer.position === plan.cut) f.framer.flushGroup();
        while (f.cuts.length > 0 && f.cuts[0]! <= f.framer.position) f.cuts.shift();
        this.#emit(f);
        if (pushed < n) break;
        if (!full) {
          f.atEnd = true;
          break;
        }
        f.atEnd = false;
        // A rescan is wanted (a file appeared or was renamed): go and look before it moves on.
        if (!next || this.#blocked || this.#stopped || this.#rescanWanted) break;
        plan = next;
      }
    } finally {
      // A read still in flight writes into a shared buffer: let it finish before anyone reuses it.
      if (pending) await pending.catch(() => undefined);
    }
    // A write event that came while reading may be for bytes the read just missed.
    if (f.poked) f.atEnd = false;
    if (total > 0) this.#progress(f);
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
   * Reads (with the bytes before plan.at again), then checks the file's first bytes: if they are
   * unchanged after the read, the file had not been truncated when the read happened, so what was
   * read is the old content's continuation.
   */
  async #fetch(f: TailedFile, buf: Buffer, plan: ReadPlan): Promise<Fetched> {
    const pre = Math.min(MARK_BYTES, plan.at);
    const got = (await readAsync(f.fd, buf, 0, pre + plan.want, plan.at - pre)).bytesRead;
    if (got <= pre) return { got, pre, same: true };
    return { got, pre, same: await this.#sameHead(f) };
  }

  /** The file's first bytes still match what was read at first; grows the fingerprint meanwhile. */
  async #sameHead(f: TailedFile): Promise<boolean> {
    const n = (await readAsync(f.fd, this.#headBuf, 0, FINGERPRINT_BYTES, 0)).bytesRead;
    const known = f.head.length;
    if (n < known || this.#headBuf.compare(f.head, 0, known, 0, known) !== 0) return false;
    if (n > known) {
      f.head = Buffer.from(this.#headBuf.subarray(0, n));
      f.identity = identityOf(f.path, f.dev, f.ino, f.head, f.identity.birth);
      this.#ctx.checkpoints.register(f.stream, f.identity);
    }
    return true;
  }

  /** The mark now ends at the framer's position: the last MARK_BYTES of what was read. */
  #advanceMark(f: TailedFile, data: Buffer): void {
    const n = data.length;
    if (n >= MARK_BYTES) {
      data.copy(f.mark, 0, n - MARK_BYTES, n);
      f.markLen = MARK_BYTES;
      return;
    }
    const keep = Math.min(f.markLen, MARK_BYTES - n);
    f.mark.copy(f.mark, 0, f.markLen - keep, f.markLen);
    data.copy(f.mark, keep);
    f.markLen = keep + n;
  }

  /** Tells the checkpoints how far the file was read (with its mark) and how large it is. */
  #progress(f: TailedFile): void {
    this.#ctx.checkpoints.progress(
      f.stream,
      f.size,
      markOf(f.framer.position, f.mark.subarray(0, f.markLen)),
    );
  }

  /**
   * At the end of a file: an orphan is let go after rotateWait; a line left without its newline for
   * partialLineTimeout goes out as partial; a file at a path checks that path for a rotation.
   */
  async #atEnd(f: TailedFile, now: number): Promise<void> {
    if (f.orphan) {
      if (now - f.lastActive >= this.#rotateWait) await this.#finish(f);
      return;
    }
    if (
      f.framer.pendingBytes > 0 &&
      now - f.lastActive >= this.#config.partialLineTimeout &&
      f.framer.flushPartial()
    ) {
      this.#emit(f);
      this.#progress(f);
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

  /**
   * The file no longer holds what was read (copytruncate, or rewritten in place): what was read
   * becomes events, what the file held beyond it and was not read is counted as lost, and the file
   * is read again from 0 as a new stream.
   */
  async #reread(f: TailedFile, reason: 'truncated' | 'rewritten'): Promise<void> {
    const lost = Math.max(0, f.size - f.framer.position);
    f.framer.end(true);
    this.#emit(f);
    this.#ctx.checkpoints.release(f.stream, f.framer.committedOffset);
    this.#loss.lost(reason, lost, { path: f.path });
    const head = await this.#readHead(f.fd);
    f.head = head;
    f.stream = this.#newStream(f.dev, f.ino);
    f.identity = identityOf(f.path, f.dev, f.ino, head, f.identity.birth);
    this.#ctx.checkpoints.register(f.stream, f.identity);
    f.framer.reset(0);
    f.chunkFrom = 0;
    f.cuts = [];
    f.atEnd = false;
    f.lastStat = 0;
    f.size = 0;
    f.markLen = 0;
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
    if (this.#byPath.get(f.path) === f) this.#byPath.delete(f.path);
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
   * more newlines than it has events, so cutting by newlines keeps chunks within the cap. Stops
   * once the pipeline refused more (a buffer is full: one chunk past it, not a whole read); returns
   * how many bytes were pushed.
   */
  #pushCapped(f: TailedFile, data: Buffer): number {
    const cap = this.#ctx.maxChunkEvents;
    let from = 0;
    while (from < data.length && !this.#blocked) {
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
    return from;
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
    if (this.#wakePending || this.#stopped) {
      this.#wakePending = false;
      return Promise.resolve();
    }
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
    if (wake) wake();
    else this.#wakePending = true;
  }

  // --- discovery ----------------------------------------------------------------------------------

  /** A directory event: a followed file was written to (read it now), or a file appeared or moved. */
  #watched(dir: string, name: string | null, kind: 'rename' | 'change'): void {
    if (this.#stopped) return;
    const path = name === null ? undefined : join(dir, name);
    const f = path === undefined ? undefined : this.#byPath.get(path);
    if (kind === 'change') {
      // A write: read it now rather than at the next poll. While paused nothing is read anyway.
      if (f === undefined || this.#blocked) return;
      f.atEnd = false;
      f.poked = true;
      this.#wakeUp();
      return;
    }
    // Created, deleted or renamed: rescan if it can concern us (a busy /var/log has other files).
    if (
      path === undefined ||
      f !== undefined ||
      this.#matches(path) ||
      this.#resumable.size > 0 ||
      this.#unreadable.size > 0 ||
      this.#isRotatedLive(dir, name!)
    ) {
      this.#rescanWanted = true;
      this.#wakeUp();
    }
  }

  /** `name` in `dir` is what rotation makes of a file the source follows there. */
  #isRotatedLive(dir: string, name: string): boolean {
    for (const f of this.#files.values())
      if (!f.orphan && dirname(f.path) === dir && isRotatedName(f.path, name)) return true;
    for (const g of this.#include)
      if (g.isFixed && dirname(g.base) === dir && isRotatedName(g.base, name)) return true;
    return false;
  }

  #matches(path: string): boolean {
    return this.#include.some((g) => g.matches(path)) && !this.#exclude.some((g) => g.matches(path));
  }

  /** Watches the directories new or rotated files can appear in: the patterns', the files', the missing checkpoints'. */
  #syncWatches(): void {
    if (this.#stopped) return;
    const dirs = new Set<string>();
    for (const g of this.#include) dirs.add(g.isFixed ? dirname(g.base) : g.base);
    for (const f of this.#files.values()) dirs.add(dirname(f.path));
    for (const dir of this.#resumable.byDir(dirname).keys()) dirs.add(dir);
    this.#watcher.sync(dirs);
  }

  /** Matches the patterns again; true when it started following a file. */
  async #rescan(): Promise<boolean> {
    this.#rescanWanted = false;
    const before = this.#files.size;
    let opened = false;
    this.#nextGlob = this.#ctx.clock.now() + this.#config.globInterval;
    const problems: WalkErrors = new Map();
    const paths = await globFiles(this.#include, this.#exclude, problems);
    // Device and inode → the paths that reach it now (several with hard links or symbolic links).
    const byKey = new Map<string, string[]>();
    for (const path of paths) {
      if (this.#stopped) return false;
      try {
        const st = await stat(path);
        if (!st.isFile()) continue;
        const key = `${st.dev}:${st.ino}`;
        const list = byKey.get(key);
        if (list) list.push(path);
        else byKey.set(key, [path]);
      } catch (err) {
        // Gone between the listing and the stat: the next scan settles it.
        if (!isAbsent(err)) problems.set(path, (err as NodeJS.ErrnoException).code ?? String(err));
      }
    }
    const seen = new Set<string>();
    for (const [key, list] of byKey) {
      if (this.#stopped) return false;
      const known = this.#files.get(key);
      if (known === undefined) {
        const f = await this.#openFile(list[0]!, false, { problems });
        if (f) {
          seen.add(f.key);
          opened = true;
        }
        continue;
      }
      seen.add(key);
      // Renamed (rotation to a name still matched): the file follows its new name, and the file
      // that took its old name is another file.
      if (!list.includes(known.path)) this.#moved(known, list[0]!);
      else if (known.orphan) this.#setLag(known, known.path);
      known.orphan = false;
    }
    const now = this.#ctx.clock.now();
    for (const f of [...this.#files.values()]) {
      if (!seen.has(f.key) && !f.orphan) {
        // Renamed away or deleted: read to its end, then let go after rotateWait. Its lag series
        // belongs to its old path, which the file now there reports on.
        f.orphan = true;
        f.lastActive = now;
        this.#dropLag(f);
        f.lag = { labels: {}, value: 0 };
        await this.#followRename(f);
      }
    }
    await this.#recoverMissing(problems);
    await this.#adoptRotated();
    this.#unreadable.report(problems);
    this.#syncWatches();
    return opened || this.#files.size > before;
  }

  /** Made after the horizon and never followed: the source has not seen this file before. */
  #new(st: Stats): boolean {
    const birth = st.birthtimeMs;
    return (
      birth > 0 &&
      // The horizon is Date.now(), in whole milliseconds; a birth time has a fraction of one. A
      // file born in the horizon's own millisecond was there when the source first looked.
      Math.floor(birth) > this.#ctx.checkpoints.horizon &&
      !this.#ctx.checkpoints.knownFile(st.dev, st.ino, birth)
    );
  }

  /** The live files' directories, each with the live names in it (the fixed patterns' too). */
  #liveNames(): Map<string, string[]> {
    const live = new Map<string, string[]>();
    const add = (path: string): void => {
      const dir = dirname(path);
      const names = live.get(dir);
      if (names === undefined) live.set(dir, [path]);
      else if (!names.includes(path)) names.push(path);
    };
    for (const f of this.#files.values()) if (!f.orphan) add(f.path);
    for (const g of this.#include) if (g.isFixed) add(g.base);
    return live;
  }

  /**
   * Files under a live file's rotated name (`app.log.1` beside `app.log`) that the source never
   * followed and that were made after the horizon: they took the live name and were rotated away
   * before the source saw them (it was stopped, or busy for longer than the file kept its name).
   * They are read from their beginning, then let go. Compressed files, and copies of a followed
   * file (copytruncate's: the same first bytes), are left alone. A file is taken only once two looks
   * found it the same size: a copy still being written has not got its first bytes yet.
   */
  async #adoptRotated(): Promise<void> {
    const candidates = new Map<string, number>();
    for (const [dir, live] of this.#liveNames()) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (this.#stopped) return;
        const path = join(dir, name);
        if (this.#byPath.has(path) || this.#matches(path) || !live.some((l) => isRotatedName(l, name)))
          continue;
        let st: Stats;
        try {
          st = await stat(path);
        } catch {
          continue;
        }
        if (!st.isFile() || this.#files.has(`${st.dev}:${st.ino}`) || !this.#new(st)) continue;
        const id = `${st.dev}:${st.ino}:${st.birthtimeMs}`;
        candidates.set(id, st.size);
        if (this.#candidates.get(id) !== st.size) continue;
        const head = await this.#headOf(path);
        if (head === undefined || looksCompressed(head) || this.#isCopy(head)) continue;
        this.#ctx.logger.info(
          { path, source: this.#ctx.name },
          'found a file that was made and rotated away before pillion saw it; reading it from its start',
        );
        await this.#openFile(path, true, { fresh: true });
      }
    }
    this.#candidates = candidates;
  }

  /** The first bytes are those of a file the source followed: a copy of it (copytruncate). */
  #isCopy(head: Buffer): boolean {
    const byLength = new Map<number, string>();
    for (const k of this.#ctx.checkpoints.knownHeads()) {
      const len = k.fingerprintLength;
      if (len === 0 || head.length < len) continue;
      let fp = byLength.get(len);
      if (fp === undefined) byLength.set(len, (fp = fingerprint(head.subarray(0, len))));
      if (fp === k.fingerprint) return true;
    }
    return false;
  }

  /**
   * An orphan's new name, from the kernel (Linux): its checkpoint then says where it is, so a
   * restart finds it even in another directory (logrotate's `olddir`), and its lag is reported there.
   */
  async #followRename(f: TailedFile): Promise<void> {
    let now: string;
    try {
      now = await readlink(`/proc/self/fd/${f.fd}`);
    } catch {
      return; // No /proc: the checkpoint keeps the old path, and a restart looks beside it.
    }
    if (!now.startsWith('/') || now.endsWith(' (deleted)') || now === f.path) return;
    if (this.#matches(now)) return; // the next scan adopts it under that name
    this.#setPath(f, now);
    this.#setLag(f, now);
    f.identity = { ...f.identity, path: now };
    this.#ctx.checkpoints.register(f.stream, f.identity);
  }

  #moved(f: TailedFile, path: string): void {
    this.#setPath(f, path);
    this.#setLag(f, path);
    f.identity = { ...f.identity, path };
    this.#ctx.checkpoints.register(f.stream, f.identity);
  }

  #setPath(f: TailedFile, path: string): void {
    if (this.#byPath.get(f.path) === f) this.#byPath.delete(f.path);
    f.path = path;
    f.framer.path = path;
    this.#byPath.set(path, f);
  }

  #setLag(f: TailedFile, path: string): void {
    this.#dropLag(f);
    f.lagPath = path;
    f.lag = this.#ctx.stats.lag(path);
    f.lag.value = Math.max(0, f.size - f.framer.position);
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
   * Starts following a file: resumes from its checkpoint when one matches its identity (and its
   * mark still holds), else reads from startAt (files present at start) or from the beginning
   * (files that appear later, or were made after the previous run last looked).
   */
  async #openFile(
    path: string,
    orphan: boolean,
    opts: { resume?: Resumable; fresh?: boolean; problems?: WalkErrors } = {},
  ): Promise<TailedFile | undefined> {
    let fd: number;
    let st: Stats;
    try {
      fd = await openAsync(path, 'r');
    } catch (err) {
      if (!isAbsent(err)) opts.problems?.set(path, (err as NodeJS.ErrnoException).code ?? String(err));
      return undefined;
    }
    try {
      st = await fstatAsync(fd);
    } catch (err) {
      await closeAsync(fd).catch(() => undefined);
      opts.problems?.set(path, (err as NodeJS.ErrnoException).code ?? String(err));
      return undefined;
    }
    const key = `${st.dev}:${st.ino}`;
    if (this.#files.has(key)) {
      await closeAsync(fd).catch(() => undefined);
      return undefined;
    }
    const head = await this.#readHead(fd);
    const match = opts.resume ?? (opts.fresh ? undefined : this.#resumable.claim(key, head));
    // Checkpoints of this inode that its first bytes do not match: it holds another file now.
    if (!opts.resume) this.#resumable.dropInode(key);
    let stream: string | undefined;
    let offset = 0;
    let cuts: number[] = [];
    if (match) {
      const verdict = await verifyResume(fd, st.size, match, this.#markBuf);
      if (verdict === 'ok') {
        stream = match.stream;
        offset = match.offset;
        cuts = this.#ctx.checkpoints.cutPoints(stream);
      } else {
        // Truncated or rewritten while we were away: what it held past the checkpoint is gone.
        this.#loss.lost(verdict, Math.max(0, (match.size ?? match.offset) - match.offset), { path });
        this.#ctx.checkpoints.release(match.stream, match.offset);
      }
    }
    if (stream === undefined) {
      stream = this.#newStream(st.dev, st.ino);
      // startAt applies to what was there before the source's first run; a file made since, that
      // it never saw (it was stopped), is read from its beginning like any file that appears later.
      if (this.#initial && this.#config.startAt === 'end' && !match && !opts.fresh && !this.#new(st))
        offset = st.size;
    }
    const identity = identityOf(path, st.dev, st.ino, head, st.birthtimeMs);
    this.#ctx.checkpoints.register(stream, identity);
    const now = this.#ctx.clock.now();
    const mark = Buffer.allocUnsafe(MARK_BYTES);
    let markLen = 0;
    if (offset > 0) {
      const want = Math.min(MARK_BYTES, offset);
      try {
        markLen = (await readAsync(fd, mark, 0, want, offset - want)).bytesRead;
      } catch {
        markLen = 0;
      }
      if (markLen !== want) markLen = 0;
    }
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
      mark,
      markLen,
      poked: false,
    };
    f.framer = new LineFramer({
      format: this.#config.format,
      maxLineBytes: this.#config.maxLineBytes,
      multiline: this.#config.multiline,
      parse: this.#parse,
      clock: this.#ctx.clock,
      stats: this.#ctx.stats,
      loss: this.#loss,
      pathField: this.#config.pathField,
      path,
      offset,
      // Resumed in the middle of a line whose first part went out as partial (see flushPartial).
      continued: markLen > 0 && mark[markLen - 1] !== 10,
      // A multiline group completed by its timeout is handed over at once (one closure per file).
      onReady: () => {
        if (this.#files.get(key) === f) this.#emit(f);
      },
    });
    f.lag.value = Math.max(0, st.size - offset);
    this.#files.set(key, f);
    this.#byPath.set(path, f);
    if (orphan) await this.#followRename(f);
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
    this.#progress(f);
    return f;
  }

  /**
   * Checkpointed files no pattern matched: a file rotated away (or renamed while the scan ran) is
   * looked for beside its last known path, by device, inode and fingerprint, whatever its name, and
   * drained. One still not found after GONE_AFTER_MS is let go, logged and counted as abandoned.
   * Checkpoints of other inodes that the same file's inode now holds are let go at once.
   */
  async #recoverMissing(problems: WalkErrors): Promise<void> {
    if (this.#resumable.size === 0) return;
    for (const [dir, list] of this.#resumable.byDir(dirname)) {
      let names: string[] = [];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (!isAbsent(err)) problems.set(dir, (err as NodeJS.ErrnoException).code ?? String(err));
      }
      for (const name of names) {
        if (this.#stopped) return;
        if (list.every((r) => r.claimed)) break;
        const path = join(dir, name);
        let st: Stats;
        try {
          st = await stat(path);
        } catch {
          continue;
        }
        const key = `${st.dev}:${st.ino}`;
        if (!st.isFile() || this.#files.has(key) || !this.#resumable.has(key)) continue;
        const head = await this.#headOf(path);
        if (head === undefined) continue;
        const match = this.#resumable.claim(key, head);
        if (match) await this.#openFile(path, !this.#matches(path), { resume: match, problems });
        // That inode holds another file now (deleted, and the inode reused): those checkpoints are done.
        else this.#resumable.dropInode(key);
      }
    }
    this.#resumable.sweep(this.#ctx.clock.now());
  }

  async #headOf(path: string): Promise<Buffer | undefined> {
    let fd: number;
    try {
      fd = await openAsync(path, 'r');
    } catch {
      return undefined;
    }
    try {
      return await this.#readHead(fd);
    } finally {
      await closeAsync(fd).catch(() => undefined);
    }
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

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
