// The log role's metrics, on the plain-number families of metrics/families.ts: stages look their
// series up once when built and increment fields per chunk, never a labelled counter per event.

import { CounterFamily, family, GaugeFamily, type Registry, type Series } from '../metrics/index.js';
import type { AbandonReason, LossReason } from './loss.js';
import type { SinkStats } from './sinks/runner.js';
import type { SourceStats } from './types.js';

export class LogStats {
  readonly events: CounterFamily;
  readonly bytes: CounterFamily;
  readonly parseErrors: CounterFamily;
  readonly truncated: CounterFamily;
  readonly dropped: CounterFamily;
  readonly filtered: CounterFamily;
  readonly retries: CounterFamily;
  readonly deadLettered: CounterFamily;
  readonly failures: CounterFamily;
  readonly bufferBytes: GaugeFamily;
  readonly lag: GaugeFamily;
  readonly lost: CounterFamily;
  readonly abandoned: CounterFamily;
  readonly unreadable: GaugeFamily;

  constructor(registry: Registry) {
    this.events = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_events_total',
          'Events in (by source) and out (by sink), by component and direction.',
        ),
    );
    this.bytes = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_bytes_total',
          'Bytes read by sources (direction="in") and delivered by sinks (direction="out", as read).',
        ),
    );
    this.parseErrors = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_parse_errors_total',
          'Records kept raw (with parse_error) because their parser failed, by source.',
        ),
    );
    this.truncated = family(
      registry,
      () => new CounterFamily('pillion_logs_truncated_total', 'Records cut at their size limit, by source.'),
    );
    this.dropped = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_dropped_total',
          'Records lost before entering the pipeline (UDP syslog while buffers were full), by source.',
        ),
    );
    this.filtered = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_filtered_total',
          'Events removed on purpose by filter transforms, by source.',
        ),
    );
    this.retries = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_retries_total',
          'Delivery attempts repeated after a failure, by sink.',
        ),
    );
    this.deadLettered = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_dead_lettered_total',
          'Events a destination refused for good, written to the dead-letter file, by sink.',
        ),
    );
    this.failures = family(
      registry,
      () => new CounterFamily('pillion_logs_delivery_failures_total', 'Failed delivery attempts, by sink.'),
    );
    this.bufferBytes = family(
      registry,
      () =>
        new GaugeFamily(
          'pillion_logs_buffer_bytes',
          "Bytes held in a sink's buffer (memory or disk), by sink.",
        ),
    );
    this.lag = family(
      registry,
      () =>
        new GaugeFamily(
          'pillion_logs_file_lag_bytes',
          'Bytes of a tailed file not read yet, by source and path (kept up to date while the source is paused).',
        ),
    );
    this.lost = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_bytes_lost_total',
          'Input bytes lost for good, by source and reason: truncated, rewritten, gone (deleted before it was read to its end), line_too_long, buffer_full (UDP).',
        ),
    );
    this.abandoned = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_logs_files_abandoned_total',
          'Checkpointed files let go before they were read to their end, by source and reason: gone (not found for a minute), unreadable.',
        ),
    );
    this.unreadable = family(
      registry,
      () =>
        new GaugeFamily(
          'pillion_logs_unreadable_paths',
          'Paths a tail source was given (directories or files) that it cannot read now, by source.',
        ),
    );
  }

  source(name: string): SourceStats {
    const l = { source: name };
    const lags = new Map<string, Series>();
    const lagFamily = this.lag;
    const lostFamily = this.lost;
    const abandonedFamily = this.abandoned;
    return {
      events: this.events.with({ component: name, direction: 'in' }),
      bytes: this.bytes.with({ component: name, direction: 'in' }),
      parseErrors: this.parseErrors.with(l),
      truncated: this.truncated.with(l),
      dropped: this.dropped.with(l),
      unreadablePaths: this.unreadable.with(l),
      lostBytes: (reason: LossReason): Series => lostFamily.with({ source: name, reason }),
      abandoned: (reason: AbandonReason): Series => abandonedFamily.with({ source: name, reason }),
      lag(path: string): Series {
        let s = lags.get(path);
        if (!s) {
          s = lagFamily.with({ source: name, path });
          lags.set(path, s);
        }
        return s;
      },
      forgetLag(path: string): void {
        const s = lags.get(path);
        if (s) {
          s.value = 0;
          lags.delete(path);
          lagFamily.remove({ source: name, path });
        }
      },
    };
  }

  sink(name: string): SinkStats {
    const l = { sink: name };
    return {
      events: this.events.with({ component: name, direction: 'out' }),
      bytes: this.bytes.with({ component: name, direction: 'out' }),
      retries: this.retries.with(l),
      deadLettered: this.deadLettered.with(l),
      failures: this.failures.with(l),
      bufferBytes: this.bufferBytes.with(l),
    };
  }
}
