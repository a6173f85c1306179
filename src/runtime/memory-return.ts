// Memory given back after a burst. V8 keeps the heap a burst of traffic grew: after five seconds of
// HTTP/2 load an inbound proxy held 137–148 MB resident, and V8 collected nothing at all in the
// 40 s after (its memory reducer, which gives some megabytes back after a start, did not run;
// README "Footprint"). A sidecar idles most of its life and its memory is multiplied by every
// pod, so the runtime looks every 5 s: when the process has been idle for two looks in a row
// (under 2 % of a core) and V8's heap is at least 16 MB larger than after the last collection
// asked for, it asks V8 for one full collection, which shrinks the young generation back and gives
// the emptied pages to the system (measured: 140.5 MB down to 91.3 MB). Under
// load it never runs; a process that stays small never runs it either.

import { createRequire } from 'node:module';
import type v8 from 'node:v8';
import type vm from 'node:vm';
import type { Clock, TimerHandle } from '../lib/clock.js';

// node:v8 and node:vm are Node's own modules that nothing else loads at start: read at the first
// look (5 s after a start) and at the first collection, not with the runtime.
const require = createRequire(import.meta.url);

export interface MemoryReturnDeps {
  clock: Clock;
  /** Bytes of V8's heap (committed: what the young generation and every space hold). */
  heapBytes: () => number;
  /** CPU time the process has used, in microseconds. */
  cpuMicros: () => number;
  /** One full collection. */
  collect: () => void;
  /** After a collection: the heap's bytes before and after it. */
  onReturn?: (before: number, after: number) => void;
}

export const MEMORY_RETURN = {
  intervalMs: 5000,
  /** Idle: under this share of one core since the last look. */
  idleShare: 0.02,
  /** Looks in a row that found the process idle. */
  idleLooks: 2,
  /** Growth of the heap over its size after the last collection that is worth one. */
  growthBytes: 16 * 1024 * 1024,
} as const;

export class MemoryReturn {
  readonly #d: MemoryReturnDeps;
  #timer: TimerHandle | undefined;
  #baseline = 0;
  #lastCpu = 0;
  #lastAt = 0;
  #idle = 0;

  constructor(deps: MemoryReturnDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#baseline = this.#d.heapBytes();
    this.#lastCpu = this.#d.cpuMicros();
    this.#lastAt = this.#d.clock.now();
    this.#schedule();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer = this.#d.clock.setTimeout(() => {
      this.look();
      if (this.#timer !== undefined) this.#schedule();
    }, MEMORY_RETURN.intervalMs);
  }

  /** One look (every intervalMs): collects when idle long enough with a heap grown enough. */
  look(): void {
    const d = this.#d;
    const now = d.clock.now();
    const elapsedMs = now - this.#lastAt;
    if (elapsedMs <= 0) return;
    const cpu = d.cpuMicros();
    this.#idle = (cpu - this.#lastCpu) / 1000 < MEMORY_RETURN.idleShare * elapsedMs ? this.#idle + 1 : 0;
    this.#lastCpu = cpu;
    this.#lastAt = now;
    const heap = d.heapBytes();
    // V8 shrank it itself: growth counts from there.
    if (heap < this.#baseline) this.#baseline = heap;
    if (this.#idle < MEMORY_RETURN.idleLooks || heap - this.#baseline < MEMORY_RETURN.growthBytes) return;
    d.collect();
    const after = d.heapBytes();
    this.#baseline = after;
    this.#idle = 0;
    // The collection's own CPU time is not the process being busy.
    this.#lastCpu = d.cpuMicros();
    this.#lastAt = d.clock.now();
    d.onReturn?.(heap, after);
  }
}

/**
 * V8's full collection, as `node --expose-gc` offers it: the flag is turned on when the first
 * collection is due (not at start), and the function taken from a new context, so that nothing
 * in the process's own global scope changes.
 */
export function v8Collect(): () => void {
  let gc: (() => void) | undefined;
  return () => {
    if (gc === undefined) {
      (require('node:v8') as typeof v8).setFlagsFromString('--expose-gc');
      gc = (require('node:vm') as typeof vm).runInNewContext('gc') as () => void;
    }
    // Without arguments: a full collection. (On Node 20, gc({ type: 'major', execution: 'sync' })
    // left objects only a FinalizationRegistry held uncollected, where gc() collects them.)
    gc!();
  };
}

/** The process's own readings for MemoryReturn. */
export function processMemoryDeps(clock: Clock): Omit<MemoryReturnDeps, 'onReturn'> {
  return {
    clock,
    heapBytes: () => (require('node:v8') as typeof v8).getHeapStatistics().total_heap_size,
    cpuMicros: () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    },
    collect: v8Collect(),
  };
}
