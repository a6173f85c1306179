// Every way input can still be lost, counted in one metric family with a reason and logged at a
// rate limit: the first of each reason at once, then at most one line a minute with how many more
// there were. Nothing is lost silently (issue 13).

import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import type { Series } from '../metrics/index.js';

/**
 * Why bytes were lost, the `reason` label of pillion_logs_bytes_lost_total:
 * - `truncated`: a file shrank (copytruncate) before what it held was read;
 * - `rewritten`: a file was rewritten in place (its bytes before the read position changed);
 * - `gone`: a file was deleted (or moved out of its directory) before it was read to its end;
 * - `line_too_long`: the part of a line past `maxLineBytes`;
 * - `buffer_full`: UDP syslog datagrams that came while the buffers were full.
 */
export type LossReason = 'truncated' | 'rewritten' | 'gone' | 'line_too_long' | 'buffer_full';

/** Why a file's checkpoint was let go before the file was read to its end (pillion_logs_files_abandoned_total). */
export type AbandonReason = 'gone' | 'unreadable';

/** Between two log lines of one reason while losses keep happening. */
export const LOSS_LOG_INTERVAL_MS = 60_000;

/** What a stage reports a loss to. */
export interface LossSink {
  /** `bytes` were lost for `reason`; `fields` (a path) go into the log line. `bytes` may be 0: logged, not counted. */
  lost(reason: LossReason, bytes: number, fields?: Record<string, unknown>): void;
}

const TEXT: Record<LossReason, string> = {
  truncated: 'a file was truncated before it was read to its end (copytruncate?)',
  rewritten: 'a file was rewritten in place; reading it again from its start',
  gone: 'a file was deleted or moved away before it was read to its end',
  line_too_long: 'a line longer than maxLineBytes was cut',
  buffer_full: 'UDP datagrams were dropped while the buffers were full',
};

interface Pending {
  lastLogAt: number;
  /** Losses since the last log line, and their bytes. */
  count: number;
  bytes: number;
}

export class LossLog implements LossSink {
  readonly #source: string;
  readonly #series: (reason: LossReason) => Series;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #pending = new Map<LossReason, Pending>();

  constructor(opts: {
    source: string;
    series: (reason: LossReason) => Series;
    logger: Logger;
    clock: Clock;
  }) {
    this.#source = opts.source;
    this.#series = opts.series;
    this.#logger = opts.logger;
    this.#clock = opts.clock;
  }

  lost(reason: LossReason, bytes: number, fields: Record<string, unknown> = {}): void {
    if (bytes > 0) this.#series(reason).value += bytes;
    const now = this.#clock.now();
    const p = this.#pending.get(reason);
    if (p !== undefined && now - p.lastLogAt < LOSS_LOG_INTERVAL_MS) {
      p.count++;
      p.bytes += bytes;
      return;
    }
    const since = p && p.count > 0 ? { suppressed: p.count, suppressedBytes: p.bytes } : {};
    const line = {
      code: 'PILLION_ERR_LOGS_LOST',
      source: this.#source,
      reason,
      bytes,
      ...fields,
      ...since,
    };
    // A truncation seen with nothing unread lost nothing: worth a note, not a warning.
    if (bytes > 0 || (p?.bytes ?? 0) > 0)
      this.#logger.warn(line, `${TEXT[reason]}: ${bytes} bytes lost (pillion_logs_bytes_lost_total)`);
    else this.#logger.info(line, `${TEXT[reason]}; nothing unread was lost`);
    this.#pending.set(reason, { lastLogAt: now, count: 0, bytes: 0 });
  }
}
