// StatsD received on UDP, the legacy push format (statsd_exporter's job): `name:value|type` lines,
// several to a datagram, with an optional `|@rate` and DogStatsD `|#tag:value,...` tags. Counters
// (c) add value/rate, gauges (g) set or, with a sign, move; timers (ms) and histograms (h, d)
// observe into a histogram in seconds. Names become Prometheus names (every character outside
// [a-zA-Z0-9_:] an underscore). Series are bounded: a new series past maxSeries is dropped and
// counted, as is every line that does not parse, each with its reason, logged at a rate limit.

import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import { type Address, formatAddress } from '../lib/address.js';
import type { Clock } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import { RateLimitedLog } from '../lib/rate-limited-log.js';
import type { StatsdConfig } from './config.js';
import type { Counter, MetricSnapshot, Registry, Sample } from './registry.js';

export type StatsdProblem = 'bad_line' | 'bad_value' | 'series_limit';

interface Series {
  labels: Record<string, string>;
  value: number;
  /** Histograms: counts per bucket (not cumulative), sum and count. */
  buckets?: Float64Array;
  sum?: number;
  count?: number;
}

interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  series: Map<string, Series>;
}

export class StatsdReceiver {
  #config: StatsdConfig;
  #logger: Logger;
  #registry: Registry;
  #labels: readonly (readonly [string, string])[];
  #problems: Counter;
  #lines: Counter;
  #log: RateLimitedLog;
  #families = new Map<string, Family>();
  #seriesCount = 0;
  #socket: Socket | undefined;
  #bounds: number[];
  /** Lines received, for the benchmark and the status. */
  received = 0;

  constructor(
    config: StatsdConfig,
    deps: {
      logger: Logger;
      clock: Clock;
      registry: Registry;
      labels: readonly (readonly [string, string])[];
      problems: Counter;
      lines: Counter;
    },
  ) {
    this.#config = config;
    this.#logger = deps.logger;
    this.#registry = deps.registry;
    this.#labels = deps.labels;
    this.#problems = deps.problems;
    this.#lines = deps.lines;
    this.#log = new RateLimitedLog(deps.logger, deps.clock);
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
  }

  start(): Promise<Address> {
    const { listen } = this.#config;
    const socket = createSocket({
      type: listen.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: this.#config.receiveBuffer,
    });
    this.#socket = socket;
    socket.on('message', (msg) => this.ingest(msg.toString('utf8')));
    return new Promise((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new PillionError(
            'PILLION_ERR_METRICS_LISTEN',
            `StatsD cannot listen on udp ${formatAddress(listen)}: ${err.code ?? err.message}`,
            { cause: err },
          ),
        ),
      );
      socket.bind({ port: listen.port, ...(listen.host ? { address: listen.host } : {}) }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.#logger.warn({ err }, 'statsd socket error'));
        const a = socket.address();
        this.#logger.info(
          { statsd: formatAddress({ host: a.address, port: a.port }) },
          'statsd listening (udp)',
        );
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  stop(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }

  /** One datagram: lines separated by newlines. */
  ingest(text: string): void {
    let start = 0;
    let n = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      if (end > start) {
        this.#line(text, start, end);
        n++;
      }
      start = end + 1;
    }
    this.received += n;
    this.#lines.inc(n);
  }

  #line(text: string, start: number, end: number): void {
    const colon = text.indexOf(':', start);
    const bar = colon === -1 ? -1 : text.indexOf('|', colon);
    if (colon <= start || bar === -1 || bar >= end) return this.#problem('bad_line', text.slice(start, end));
    const rawValue = text.slice(colon + 1, bar);
    let typeEnd = text.indexOf('|', bar + 1);
    if (typeEnd === -1 || typeEnd > end) typeEnd = end;
    const type = text.slice(bar + 1, typeEnd);
    let rate = 1;
    let tags: string | undefined;
    for (let i = typeEnd; i < end;) {
      let next = text.indexOf('|', i + 1);
      if (next === -1 || next > end) next = end;
      const part = text.slice(i + 1, next);
      if (part.startsWith('@')) rate = Number(part.slice(1));
      else if (part.startsWith('#')) tags = part.slice(1);
      else return this.#problem('bad_line', text.slice(start, end));
      i = next;
    }
    const value = Number(rawValue);
    if (rawValue === '' || !Number.isFinite(value) || !(rate > 0 && rate <= 1))
      return this.#problem('bad_value', text.slice(start, end));
    const name = this.#config.prefix + promName(text.slice(start, colon));
    switch (type) {
      case 'c': {
        const s = this.#series(name, 'counter', tags);
        if (s) s.value += value / rate;
        return;
      }
      case 'g': {
        const s = this.#series(name, 'gauge', tags);
        if (!s) return;
        const c = rawValue.charCodeAt(0);
        // A sign makes a gauge move (statsd's relative gauges); without one it is set.
        if (c === 43 || c === 45) s.value += value;
        else s.value = value;
        return;
      }
      case 'ms':
      case 'h':
      case 'd': {
        const s = this.#series(name, 'histogram', tags);
        if (!s) return;
        const v = type === 'ms' ? value / 1000 : value;
        const times = 1 / rate;
        s.sum! += v * times;
        s.count! += times;
        const b = this.#bounds;
        for (let i = 0; i < b.length; i++)
          if (v <= b[i]!) {
            s.buckets![i]! += times;
            break;
          }
        return;
      }
      default:
        return this.#problem('bad_line', text.slice(start, end));
    }
  }

  #series(name: string, type: Family['type'], tags: string | undefined): Series | undefined {
    let f = this.#families.get(name);
    if (!f) {
      if (this.#seriesCount >= this.#config.maxSeries) return this.#limit(name);
      f = { name, type, series: new Map() };
      this.#families.set(name, f);
    } else if (f.type !== type) {
      this.#problem('bad_line', `${name} is a ${f.type}, sent as a ${type}`);
      return undefined;
    }
    const key = tags ?? '';
    let s = f.series.get(key);
    if (!s) {
      if (this.#seriesCount >= this.#config.maxSeries) return this.#limit(name);
      const labels: Record<string, string> = {};
      if (tags)
        for (const t of tags.split(',')) {
          const c = t.indexOf(':');
          const k = promLabel(c === -1 ? t : t.slice(0, c));
          if (k !== '') labels[k] = c === -1 ? '' : t.slice(c + 1);
        }
      s = { labels, value: 0 };
      if (type === 'histogram') {
        s.buckets = new Float64Array(this.#bounds.length);
        s.sum = 0;
        s.count = 0;
      }
      f.series.set(key, s);
      this.#seriesCount++;
    }
    return s;
  }

  #limit(name: string): undefined {
    this.#problem('series_limit', `${name}: more than maxSeries ${this.#config.maxSeries} series`);
    return undefined;
  }

  #problem(reason: StatsdProblem, line: string): void {
    this.#problems.inc({ reason });
    this.#log.log(
      'warn',
      reason,
      { reason, line: line.length > 200 ? `${line.slice(0, 200)}…` : line },
      reason === 'series_limit' ? 'a new StatsD series is dropped' : 'a StatsD line is dropped',
    );
  }

  /** The series as families, with the enrichment labels (clear of pillion's own names). */
  families(): MetricSnapshot[] {
    const out: MetricSnapshot[] = [];
    const extra = this.#labels;
    for (const f of this.#families.values()) {
      const name = this.#registry.ownsName(f.name) ? `app_${f.name}` : f.name;
      const values: Sample[] = [];
      for (const s of f.series.values()) {
        const labels: Record<string, string> = {};
        for (const k in s.labels) labels[extra.some(([n]) => n === k) ? `exported_${k}` : k] = s.labels[k]!;
        for (const [k, v] of extra) labels[k] = v;
        if (f.type !== 'histogram') {
          values.push({ labels, value: s.value });
          continue;
        }
        let cumulative = 0;
        for (let i = 0; i < this.#bounds.length; i++) {
          cumulative += s.buckets![i]!;
          values.push({
            labels: { ...labels, le: String(this.#bounds[i]) },
            value: cumulative,
            metricName: `${name}_bucket`,
          });
        }
        values.push({ labels: { ...labels, le: '+Inf' }, value: s.count!, metricName: `${name}_bucket` });
        values.push({ labels, value: s.sum!, metricName: `${name}_sum` });
        values.push({ labels, value: s.count!, metricName: `${name}_count` });
      }
      out.push({
        name,
        help: `StatsD ${f.type === 'histogram' ? 'timer or histogram' : f.type} ${f.name}.`,
        type: f.type,
        values,
      });
    }
    return out;
  }

  get series(): number {
    return this.#seriesCount;
  }
}

function promName(s: string): string {
  const out = s.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(out) ? `_${out}` : out;
}

function promLabel(s: string): string {
  const out = s.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(out) ? `_${out}` : out.startsWith('__') ? out.slice(1) : out;
}
