// A SourceContext for tests of push sources (http, syslog): collects the chunks they emit, and
// lets a test say whether the pipeline has room (capacity() waits until it has).

import { pino } from 'pino';
import { systemClock } from '../../lib/clock.js';
import type { Series } from '../../metrics/index.js';
import type { Chunk, LogEvent, SourceContext, SourceStats } from '../types.js';

export interface FakeContext {
  ctx: SourceContext;
  stats: SourceStats;
  /** Every chunk emitted, in order (a test calls their onAck). */
  chunks: Chunk[];
  /** All events of all chunks. */
  events(): LogEvent[];
  /** Full (false) or not; becoming not full resolves the capacity() calls waiting. */
  setRoom(room: boolean): void;
}

/** Source counters on plain series; lost bytes and abandoned files by reason, in maps a test reads. */
export function fakeSourceStats(
  over: Partial<SourceStats> = {},
): SourceStats & { lost: Map<string, Series>; abandonedBy: Map<string, Series> } {
  const series = (): Series => ({ labels: {}, value: 0 });
  const lost = new Map<string, Series>();
  const abandonedBy = new Map<string, Series>();
  const byReason = (m: Map<string, Series>) => (reason: string) => {
    let s = m.get(reason);
    if (!s) m.set(reason, (s = series()));
    return s;
  };
  return {
    events: series(),
    bytes: series(),
    parseErrors: series(),
    truncated: series(),
    dropped: series(),
    unreadablePaths: series(),
    lostBytes: byReason(lost),
    abandoned: byReason(abandonedBy),
    lag: () => series(),
    forgetLag: () => {},
    lost,
    abandonedBy,
    ...over,
  };
}

export function fakeContext(name = 'app'): FakeContext {
  const stats = fakeSourceStats();
  const chunks: Chunk[] = [];
  let room = true;
  let waiters: (() => void)[] = [];
  const ctx: SourceContext = {
    name,
    logger: pino({ level: 'silent' }),
    clock: systemClock,
    stats,
    dataDir: '/nonexistent',
    emit(chunk) {
      chunks.push(chunk);
      return room;
    },
    capacity: () => (room ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
    hasCapacity: () => room,
    maxChunkEvents: 10_000,
    checkpoints: {
      horizon: 0,
      knownFile: () => false,
      knownHeads: () => [],
      list: () => [],
      cutPoints: () => [],
      register: () => {},
      progress: () => {},
      release: () => {},
    },
  };
  return {
    ctx,
    stats,
    chunks,
    events: () => chunks.flatMap((c) => c.events),
    setRoom(r) {
      room = r;
      if (!r) return;
      const ready = waiters;
      waiters = [];
      for (const w of ready) w();
    },
  };
}
