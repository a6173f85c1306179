// Where checkpointed sources resume: per stream (a tailed file), its identity and the offset each
// sink has acknowledged. Kept in a JSON file replaced atomically once a second, and between those
// in a checksummed journal file overwritten in place on every change. Beside it, the files a
// source let go of (released), remembered for a while, so that a file seen under a rotated name
// is known to be one already read, or one never seen (see ReleasedFiles).

import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '../lib/clock.js';
import { writeFileAtomicSync } from '../lib/atomic-write.js';
import { PillionError } from '../lib/errors.js';
import { crc32 } from './buffer/crc32.js';
import type { FileIdentity, ReadMark, ResumePoint, SourceCheckpoints } from './types.js';

/** The most often the file is replaced and fsynced; changes in between go to the journal. */
const SYNC_INTERVAL_MS = 1000;
const VERSION = 1;
/** The journal's first line: `<magic> <seq> <length> <crc32 hex>`, then `length` bytes of JSON. */
const JOURNAL_MAGIC = 'pillion-checkpoints';
/** Released files remembered per source; past it the oldest are forgotten and the horizon moves. */
export const RELEASED_MAX = 1024;

/** A file a source let go of, remembered so it is not taken for a new one (see horizon). */
interface ReleasedFile {
  dev: number;
  ino: number;
  birth: number;
  fingerprint: string;
  fingerprintLength: number;
  /** When it was released (wall-clock ms), to forget the oldest first. */
  at: number;
}

/** Per source: the horizon and the files released since (born after it). */
interface ReleasedState {
  horizon: number;
  files: ReleasedFile[];
}

interface StreamEntry {
  source: string;
  identity: FileIdentity;
  /** Sink name → offset acknowledged (everything before it was delivered). */
  sinks: Record<string, number>;
  /** Set once the stream is gone: the entry is dropped when every sink has reached it. */
  released?: number;
  /** The file's size when last seen, and a mark of the bytes before where it was read up to. */
  size?: number;
  mark?: ReadMark;
}

/** One stream as stored (a copy), for inspection. */
export interface CheckpointEntry {
  stream: string;
  source: string;
  identity: FileIdentity;
  sinks: Record<string, number>;
  released?: number;
  size?: number;
  mark?: ReadMark;
}

/*
 * Durability. Changes are written at the end of the event-loop turn that made them (many
 * acknowledgements become one write), each state numbered by a sequence number:
 * - at most once a second (and on flush()), to a temporary file that is fsynced and renamed over
 *   checkpoints.json, with its directory fsynced: that state survives a power cut;
 * - in between, into the journal `<file>.journal`, with one write() at offset 0 of a file kept
 *   open. A rename costs ext4 ~150 µs (it flushes the new file's data first); the write costs ~2.
 * open() takes the journal's state when its checksum holds and its number is the higher. That is
 * safe against kill -9 and OOM kills: a write() is in the kernel's page cache when it returns, and
 * the page cache belongs to the kernel, not to the process. A crash of the machine can tear the
 * journal; its checksum then fails and checkpoints.json, at most about a second old, is used:
 * checkpoints only move forward on acknowledgement, so an old one means lines sent again (at least
 * once), never lines skipped. A checkpoints.json torn by such a crash fails to parse and is set
 * aside (see open()).
 */
export class CheckpointStore {
  #file: string;
  #logger: Logger;
  #clock: Clock;
  #streams = new Map<string, StreamEntry>();
  #sourceSinks = new Map<string, readonly string[]>();
  #scheduled = false;
  /** Changes not yet written to the file. */
  #dirty = false;
  /** Written to the journal but not yet to the file. */
  #unsynced = false;
  /** The number of the last state written. */
  #seq = 0;
  #journal: number | undefined;
  #journalBytes = 0;
  #journalFailed = false;
  #lastSync = -Infinity;
  #syncTimer: TimerHandle | undefined;
  #writeFailed = false;
  #closed = false;
  #released = new Map<string, ReleasedState>();
  #releasedFailed = false;

  private constructor(file: string, logger: Logger, clock: Clock) {
    this.#file = file;
    this.#logger = logger;
    this.#clock = clock;
  }

  /**
   * Loads the store: the journal's state when it is whole and newer, else the file's. A missing
   * file is an empty store; an unreadable or corrupt one is renamed to `<file>.corrupt`, logged
   * with PILLION_ERR_LOGS_CHECKPOINT, and the store starts empty (or from the journal).
   * Throws PILLION_ERR_LOGS_DATA_DIR when the directory cannot be created.
   */
  static open(file: string, logger: Logger, clock: Clock = systemClock): CheckpointStore {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_LOGS_DATA_DIR',
        `cannot create the checkpoint directory ${dirname(file)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const store = new CheckpointStore(file, logger, clock);
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') store.#setAside(err as Error);
    }
    let fileSeq = -1;
    if (text !== undefined) {
      try {
        fileSeq = store.#load(JSON.parse(text));
      } catch (err) {
        store.#streams.clear();
        store.#setAside(err as Error);
      }
    }
    const journal = store.#readJournal();
    if (journal && journal.seq > fileSeq) {
      const fromFile = new Map(store.#streams);
      store.#streams.clear();
      try {
        store.#load(journal.doc);
        // Not yet in the file: the first write goes there.
        store.#unsynced = true;
      } catch (err) {
        store.#streams = fromFile;
        logger.warn(
          { err, file: `${file}.journal` },
          'the checkpoint journal is malformed; using the checkpoint file',
        );
      }
    }
    store.#seq = Math.max(store.#seq, fileSeq, journal?.seq ?? -1);
    store.#loadReleased();
    return store;
  }

  /** The journal's state, or undefined when there is none or it is torn (logged). */
  #readJournal(): { seq: number; doc: unknown } | undefined {
    const path = `${this.#file}.journal`;
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#logger.warn(
          { err, file: path },
          'cannot read the checkpoint journal; using the checkpoint file',
        );
      return undefined;
    }
    const nl = buf.indexOf(0x0a);
    const head = (nl < 0 ? '' : buf.toString('latin1', 0, nl)).split(' ');
    const seq = Number(head[1]);
    const len = Number(head[2]);
    const ok =
      head.length === 4 &&
      head[0] === JOURNAL_MAGIC &&
      Number.isSafeInteger(seq) &&
      Number.isSafeInteger(len) &&
      len >= 0 &&
      nl + 1 + len <= buf.length &&
      crc32(buf, nl + 1, nl + 1 + len).toString(16) === head[3];
    if (!ok) {
      if (buf.length > 0)
        this.#logger.warn(
          { file: path },
          'the checkpoint journal is torn (a machine crash?); using the checkpoint file',
        );
      return undefined;
    }
    try {
      return { seq, doc: JSON.parse(buf.toString('utf8', nl + 1, nl + 1 + len)) };
    } catch {
      return undefined;
    }
  }

  /** What one source sees of the store; `sinks` are the sinks that take the source's events. */
  forSource(source: string, sinks: readonly string[]): SourceCheckpoints {
    this.#sourceSinks.set(source, [...sinks]);
    // Sinks may have changed since the streams were released: drop those now complete.
    for (const [stream, e] of this.#streams) if (e.source === source) this.#maybeRemove(stream, e);
    const list = sinks.slice();
    let released = this.#released.get(source);
    if (released === undefined) {
      // The source's first run with this data directory: files born before now are not its concern.
      released = { horizon: Date.now(), files: [] };
      this.#released.set(source, released);
      this.#writeReleased();
    }
    const state = released;
    return {
      get horizon() {
        return state.horizon;
      },
      knownFile: (dev, ino, birth) => {
        for (const e of this.#streams.values())
          if (e.source === source && e.identity.dev === dev && e.identity.ino === ino) return true;
        for (const r of state.files) if (r.dev === dev && r.ino === ino && r.birth === birth) return true;
        return false;
      },
      knownHeads: () => {
        const out: { fingerprint: string; fingerprintLength: number }[] = [];
        for (const e of this.#streams.values()) if (e.source === source) out.push(e.identity);
        for (const r of state.files) out.push(r);
        return out;
      },
      list: () => {
        const out: ResumePoint[] = [];
        for (const [stream, e] of this.#streams) {
          if (e.source !== source) continue;
          const p: ResumePoint = { stream, identity: { ...e.identity }, offset: resumeOffset(e, list) };
          if (e.size !== undefined) p.size = e.size;
          if (e.mark !== undefined) p.mark = { ...e.mark };
          out.push(p);
        }
        return out;
      },
      progress: (stream, size, mark) => {
        const e = this.#streams.get(stream);
        if (!e || e.source !== source) return;
        // No write of its own: this changes with every read, and rides on the next acknowledgement.
        e.size = size;
        e.mark = mark;
      },
      cutPoints: (stream) => {
        const e = this.#streams.get(stream);
        if (!e || e.source !== source) return [];
        const from = resumeOffset(e, list);
        const cuts = new Set<number>();
        for (const s of list) {
          const o = e.sinks[s];
          if (o !== undefined && o > from) cuts.add(o);
        }
        return [...cuts].sort((a, b) => a - b);
      },
      register: (stream, identity) => {
        const e = this.#streams.get(stream);
        if (e) {
          if (!sameIdentity(e.identity, identity)) {
            e.identity = { ...identity };
            this.#changed();
          }
          return;
        }
        // Every sink starts at 0: a sink without an entry would otherwise count as caught up
        // with the others, and a crash before its first acknowledgement would skip its lines.
        const offsets: Record<string, number> = {};
        for (const s of list) offsets[s] = 0;
        this.#streams.set(stream, { source, identity: { ...identity }, sinks: offsets });
        this.#changed();
      },
      release: (stream, finalOffset) => {
        const e = this.#streams.get(stream);
        if (!e || e.source !== source) return;
        // Remembered before the stream can go: a kill in between leaves both, never neither.
        this.#remember(state, e.identity);
        e.released = finalOffset;
        this.#maybeRemove(stream, e);
        this.#changed();
      },
    };
  }

  /** `sink` has everything of `stream` before `offset`. Never moves a checkpoint backwards. */
  advance(stream: string, sink: string, offset: number): void {
    const e = this.#streams.get(stream);
    if (e === undefined) return;
    const cur = e.sinks[sink];
    if (cur !== undefined && cur >= offset) return;
    e.sinks[sink] = offset;
    if (e.released !== undefined) this.#maybeRemove(stream, e);
    this.#changed();
  }

  /**
   * The offset `sink` has acknowledged for `stream` (undefined when it has none): on resume a
   * chunk ending at or before it is already there.
   */
  acknowledged(stream: string, sink: string): number | undefined {
    return this.#streams.get(stream)?.sinks[sink];
  }

  /** A copy of every stream stored. */
  entries(): CheckpointEntry[] {
    const out: CheckpointEntry[] = [];
    for (const [stream, e] of this.#streams) {
      const c: CheckpointEntry = {
        stream,
        source: e.source,
        identity: { ...e.identity },
        sinks: { ...e.sinks },
      };
      if (e.released !== undefined) c.released = e.released;
      if (e.size !== undefined) c.size = e.size;
      if (e.mark !== undefined) c.mark = { ...e.mark };
      out.push(c);
    }
    return out;
  }

  /** Writes the file now, fsynced. */
  flush(): void {
    if (this.#dirty || this.#unsynced) this.#write(true);
  }
  /** Flushes and stops the timers; later changes are not written. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#syncTimer?.cancel();
    this.#syncTimer = undefined;
    if (this.#journal !== undefined) closeSync(this.#journal);
    this.#journal = undefined;
  }

  #maybeRemove(stream: string, e: StreamEntry): void {
    if (e.released === undefined) return;
    const sinks = this.#sourceSinks.get(e.source) ?? Object.keys(e.sinks);
    if (resumeOffset(e, sinks) >= e.released) {
      this.#streams.delete(stream);
      this.#changed();
    }
  }

  #changed(): void {
    this.#dirty = true;
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#dirty && !this.#closed) this.#write(this.#clock.now() - this.#lastSync >= SYNC_INTERVAL_MS);
    });
  }

  #write(sync: boolean): void {
    const streams: Record<string, StreamEntry> = {};
    for (const [k, e] of this.#streams) streams[k] = e;
    const seq = ++this.#seq;
    const data = Buffer.from(JSON.stringify({ version: VERSION, seq, streams }));
    if (!sync && this.#writeJournal(seq, data)) {
      this.#dirty = false;
      this.#unsynced = true;
      this.#armSync();
      return;
    }
    try {
      writeFileAtomicSync(this.#file, data, { mode: 0o600, sync });
    } catch (err) {
      // Kept dirty: the next change or the sync timer tries again. Logged once per outage.
      if (!this.#writeFailed)
        this.#logger.error(
          { err, code: 'PILLION_ERR_LOGS_DATA_DIR', file: this.#file },
          'cannot write the checkpoint file',
        );
      this.#writeFailed = true;
      this.#dirty = true;
      this.#armSync();
      return;
    }
    this.#writeFailed = false;
    this.#dirty = false;
    if (sync) {
      this.#unsynced = false;
      this.#lastSync = this.#clock.now();
      this.#syncTimer?.cancel();
      this.#syncTimer = undefined;
    } else {
      this.#unsynced = true;
      this.#armSync();
    }
  }

  /** One write at offset 0 of the journal; false when it cannot be written (the file is written instead). */
  #writeJournal(seq: number, data: Buffer): boolean {
    if (this.#journalFailed) return false;
    const head = Buffer.from(
      `${JOURNAL_MAGIC} ${seq} ${data.length} ${crc32(data).toString(16)}\n`,
      'latin1',
    );
    const record = Buffer.concat([head, data]);
    try {
      this.#journal ??= openSync(`${this.#file}.journal`, 'w', 0o600);
      let off = 0;
      while (off < record.length) off += writeSync(this.#journal, record, off, record.length - off, off);
      // What lies past the record is ignored (the head has its length); keep the file from only growing.
      if (this.#journalBytes > 2 * record.length + 4096) {
        ftruncateSync(this.#journal, record.length);
        this.#journalBytes = record.length;
      } else this.#journalBytes = Math.max(record.length, this.#journalBytes);
      return true;
    } catch (err) {
      this.#logger.warn(
        { err, file: `${this.#file}.journal` },
        'cannot write the checkpoint journal; replacing the file on every change instead',
      );
      this.#journalFailed = true;
      return false;
    }
  }

  #armSync(): void {
    if (this.#syncTimer !== undefined || this.#closed) return;
    const wait = Math.max(0, this.#lastSync + SYNC_INTERVAL_MS - this.#clock.now());
    this.#syncTimer = this.#clock.setTimeout(() => {
      this.#syncTimer = undefined;
      if (!this.#closed && (this.#dirty || this.#unsynced)) this.#write(true);
    }, wait);
  }

  /**
   * Remembers a released file: by identity (told apart from a new file under a rotated name) and by
   * its first bytes (a copy of it is not a new file either, even of one older than the horizon).
   * The oldest beyond RELEASED_MAX are forgotten, and the horizon moves past them.
   */
  #remember(state: ReleasedState, id: FileIdentity): void {
    const birth = id.birth ?? 0;
    if (
      state.files.some(
        (r) => r.dev === id.dev && r.ino === id.ino && r.birth === birth && r.fingerprint === id.fingerprint,
      )
    )
      return;
    state.files.push({
      dev: id.dev,
      ino: id.ino,
      birth,
      fingerprint: id.fingerprint,
      fingerprintLength: id.fingerprintLength,
      at: Date.now(),
    });
    if (state.files.length > RELEASED_MAX) {
      const gone = state.files.splice(0, state.files.length - RELEASED_MAX);
      for (const r of gone) if (r.birth > state.horizon) state.horizon = r.birth;
    }
    this.#writeReleased();
  }

  /**
   * `<file>.released`: rewritten (no fsync) whenever a file is released, which is once per
   * rotation, not per acknowledgement. A process crash loses nothing of it; a machine crash may,
   * and then a released file born after the horizon may be read again (at least once).
   */
  #writeReleased(): void {
    if (this.#closed) return;
    const sources: Record<string, ReleasedState> = {};
    for (const [k, v] of this.#released) sources[k] = v;
    try {
      writeFileAtomicSync(
        `${this.#file}.released`,
        Buffer.from(JSON.stringify({ version: VERSION, sources })),
        {
          mode: 0o600,
          sync: false,
        },
      );
      this.#releasedFailed = false;
    } catch (err) {
      if (!this.#releasedFailed)
        this.#logger.error(
          { err, code: 'PILLION_ERR_LOGS_DATA_DIR', file: `${this.#file}.released` },
          'cannot write the list of released files; a restart may read some rotated files again',
        );
      this.#releasedFailed = true;
    }
  }

  #loadReleased(): void {
    const path = `${this.#file}.released`;
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#logger.warn(
          { err, file: path },
          'the list of released files is unreadable; starting a new one',
        );
      return;
    }
    if (!isObject(doc) || doc.version !== VERSION || !isObject(doc.sources)) return;
    for (const [source, raw] of Object.entries(doc.sources)) {
      if (!isObject(raw) || !isOffset(raw.horizon) || !Array.isArray(raw.files)) continue;
      const files: ReleasedFile[] = [];
      for (const f of raw.files as unknown[]) {
        if (
          isObject(f) &&
          isOffset(f.dev) &&
          isOffset(f.ino) &&
          typeof f.birth === 'number' &&
          typeof f.fingerprint === 'string' &&
          isOffset(f.fingerprintLength) &&
          typeof f.at === 'number'
        )
          files.push({
            dev: f.dev,
            ino: f.ino,
            birth: f.birth,
            fingerprint: f.fingerprint,
            fingerprintLength: f.fingerprintLength,
            at: f.at,
          });
      }
      this.#released.set(source, { horizon: raw.horizon, files });
    }
  }

  #setAside(cause: Error): void {
    const aside = `${this.#file}.corrupt`;
    try {
      renameSync(this.#file, aside);
    } catch {
      // Nothing to set aside (unreadable and unrenamable): the next write replaces it.
    }
    const err = new PillionError(
      'PILLION_ERR_LOGS_CHECKPOINT',
      `the checkpoint file ${this.#file} is unreadable or corrupt (${cause.message}); it was moved to ${aside} and files are read from their startAt position`,
      { cause },
    );
    this.#logger.error({ err, code: err.code }, err.message);
  }

  /** Loads a stored state; returns its sequence number (0 for a file written before there were any). */
  #load(doc: unknown): number {
    if (!isObject(doc) || doc.version !== VERSION || !isObject(doc.streams))
      throw new Error(`not a version ${VERSION} checkpoint file`);
    const seq = doc.seq ?? 0;
    if (!isOffset(seq)) throw new Error('the sequence number is malformed');
    for (const [stream, raw] of Object.entries(doc.streams)) {
      if (
        !isObject(raw) ||
        typeof raw.source !== 'string' ||
        !isIdentity(raw.identity) ||
        !isObject(raw.sinks)
      )
        throw new Error(`stream ${JSON.stringify(stream)} is malformed`);
      const sinks: Record<string, number> = {};
      for (const [s, o] of Object.entries(raw.sinks)) {
        if (!isOffset(o)) throw new Error(`stream ${JSON.stringify(stream)} has a bad offset for ${s}`);
        sinks[s] = o;
      }
      const e: StreamEntry = { source: raw.source, identity: raw.identity, sinks };
      if (raw.released !== undefined) {
        if (!isOffset(raw.released))
          throw new Error(`stream ${JSON.stringify(stream)} has a bad released offset`);
        e.released = raw.released;
      }
      // Size and mark only help: a malformed one is left out rather than failing the file.
      if (isOffset(raw.size)) e.size = raw.size;
      if (isMark(raw.mark))
        e.mark = { offset: raw.mark.offset, length: raw.mark.length, fingerprint: raw.mark.fingerprint };
      this.#streams.set(stream, e);
    }
    return seq;
  }
}

/** The least offset any of `sinks` acknowledged; a sink without one counts as the least of the others. */
function resumeOffset(e: StreamEntry, sinks: readonly string[]): number {
  let least = Infinity;
  for (const s of sinks) {
    const o = e.sinks[s];
    if (o !== undefined && o < least) least = o;
  }
  return least === Infinity ? 0 : least;
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return (
    a.birth === b.birth &&
    a.path === b.path &&
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.fingerprint === b.fingerprint &&
    a.fingerprintLength === b.fingerprintLength
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isOffset(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isMark(v: unknown): v is ReadMark {
  return isObject(v) && isOffset(v.offset) && isOffset(v.length) && typeof v.fingerprint === 'string';
}

function isIdentity(v: unknown): v is FileIdentity {
  return (
    isObject(v) &&
    (v.birth === undefined || typeof v.birth === 'number') &&
    typeof v.path === 'string' &&
    typeof v.dev === 'number' &&
    typeof v.ino === 'number' &&
    typeof v.fingerprint === 'string' &&
    isOffset(v.fingerprintLength)
  );
}

// A rename is durable only once its directory is; best effort where directories cannot be opened.
