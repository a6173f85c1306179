// The checkpoints of a tail source that no open file has claimed yet. A file found is matched to
// one by device, inode and fingerprint; one that is not found stays for GONE_AFTER_MS (a rename
// during start-up, a directory briefly unreadable) and is then let go, logged and counted.

import type { LossSink } from '../loss.js';
import type { ResumePoint, SourceContext } from '../types.js';
import { sameHead } from './file-identity.js';

/** A checkpointed file not found for this long is let go, logged and counted as abandoned. */
export const GONE_AFTER_MS = 60_000;

export interface Resumable extends ResumePoint {
  claimed: boolean;
}

export class Resumables {
  readonly #ctx: SourceContext;
  readonly #loss: LossSink;
  /** Unclaimed checkpoints by device and inode (`dev:ino`). */
  readonly #byKey = new Map<string, Resumable[]>();
  /** When each was first looked for in vain, by stream. */
  readonly #missingSince = new Map<string, number>();

  constructor(ctx: SourceContext, loss: LossSink) {
    this.#ctx = ctx;
    this.#loss = loss;
  }

  load(points: readonly ResumePoint[]): void {
    for (const p of points) {
      const key = `${p.identity.dev}:${p.identity.ino}`;
      const list = this.#byKey.get(key) ?? [];
      list.push({ ...p, claimed: false });
      this.#byKey.set(key, list);
    }
  }

  /** How many inodes still have an unclaimed checkpoint. */
  get size(): number {
    return this.#byKey.size;
  }

  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** The newest checkpoint of this device and inode whose fingerprint matches the file's first bytes. */
  claim(key: string, head: Buffer): Resumable | undefined {
    const list = this.#byKey.get(key);
    if (!list) return undefined;
    let found: Resumable | undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i]!;
      if (!r.claimed && sameHead(r.identity, head)) {
        found = r;
        break;
      }
    }
    if (!found) return undefined;
    found.claimed = true;
    this.#missingSince.delete(found.stream);
    if (list.every((r) => r.claimed)) this.#byKey.delete(key);
    return found;
  }

  /** The inode holds another file now (its first bytes differ): its checkpoints are let go. */
  dropInode(key: string): void {
    for (const r of this.#byKey.get(key) ?? [])
      if (!r.claimed) this.abandon(r, 'its inode now holds another file');
    this.#byKey.delete(key);
  }

  /** The unclaimed checkpoints, by the directory of their file's last known path. */
  byDir(dirname: (path: string) => string): Map<string, Resumable[]> {
    const out = new Map<string, Resumable[]>();
    for (const list of this.#byKey.values()) {
      for (const r of list) {
        if (r.claimed) continue;
        const dir = dirname(r.identity.path);
        const l = out.get(dir);
        if (l) l.push(r);
        else out.set(dir, [r]);
      }
    }
    return out;
  }

  /** After a look that did not find them: starts the clock of each, lets go those gone for GONE_AFTER_MS. */
  sweep(now: number): void {
    for (const [key, list] of this.#byKey) {
      for (const r of list) {
        if (r.claimed) continue;
        const since = this.#missingSince.get(r.stream);
        if (since === undefined) this.#missingSince.set(r.stream, now);
        else if (now - since >= GONE_AFTER_MS)
          this.abandon(r, `it was not found for ${GONE_AFTER_MS / 1000}s`);
      }
      if (list.every((r) => r.claimed)) this.#byKey.delete(key);
    }
  }

  /** Lets a checkpoint go whose file is gone: logged, and counted with what it still held unread. */
  abandon(r: Resumable, why: string): void {
    r.claimed = true;
    this.#missingSince.delete(r.stream);
    this.#ctx.checkpoints.release(r.stream, r.offset);
    this.#ctx.stats.abandoned('gone').value++;
    const unread = Math.max(0, (r.size ?? r.offset) - r.offset);
    this.#ctx.logger.warn(
      { path: r.identity.path, source: this.#ctx.name, unread },
      `letting go of the checkpoint of a file that is gone: ${why} (pillion_logs_files_abandoned_total)`,
    );
    if (unread > 0) this.#loss.lost('gone', unread, { path: r.identity.path });
  }
}
