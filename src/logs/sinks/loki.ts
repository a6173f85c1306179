// Grafana Loki sink driver: groups a batch into streams by label set, orders each stream by time
// (Loki refuses out-of-order entries per stream) and POSTs them to the JSON push API.

import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import type { LokiSinkConfig } from '../config.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import {
  basicAuth,
  type DriverDeps,
  HttpDelivery,
  splitUrl,
  stringify,
  withUnencodable,
} from './http-delivery.js';

/** Loki's default `max_label_value_length`: a longer value fails the whole push. */
const MAX_LABEL_VALUE = 2048;
/** Loki refuses a stream without labels; this one is used when no configured label applies. */
const FALLBACK_LABELS = { job: 'pillion' } as const;
/** A year and at least a date's length: keeps Date.parse from reading "1" as 2001. */
const DATE_LIKE = /\d{4}/;
const FRACTION = /\d:\d\d[.,](\d+)/;

/** A label: fixed text, or text with `{{field}}` references (dots reach into objects). */
interface CompiledLabel {
  name: string;
  /** Fixed text, and field references between. */
  parts: (string | FieldRef)[];
}

/** `{{a.b}}`: the field named `a.b` if there is one, else field `b` of object `a`. */
interface FieldRef {
  name: string;
  path: string[];
}

interface Entry {
  ms: number;
  /** Nanoseconds within the millisecond, 0..999999. */
  ns: number;
  line: string;
}

interface Stream {
  labels: Record<string, string>;
  entries: Entry[];
  sorted: boolean;
}

function compileLabels(labels: Record<string, string>): CompiledLabel[] {
  const out: CompiledLabel[] = [];
  for (const [name, template] of Object.entries(labels)) {
    const parts: (string | FieldRef)[] = [];
    const re = /\{\{\s*([^{}]+?)\s*\}\}/g;
    let last = 0;
    for (let m = re.exec(template); m !== null; m = re.exec(template)) {
      parts.push(template.slice(last, m.index), { name: m[1]!, path: m[1]!.split('.') });
      last = m.index + m[0].length;
    }
    parts.push(template.slice(last));
    out.push({ name, parts });
  }
  return out;
}

/** The text of a field for a label; undefined when absent or not a scalar. */
function fieldText(event: LogEvent, ref: FieldRef): string | undefined {
  // A field whose own name holds a dot wins over a nested path.
  let v: unknown = event[ref.name];
  const path = ref.path;
  if (v === undefined && path.length > 1) {
    v = event;
    for (let i = 0; i < path.length && v !== undefined; i++) {
      v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[path[i]!] : undefined;
    }
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return undefined;
}

function labelValue(event: LogEvent, label: CompiledLabel): string | undefined {
  const parts = label.parts;
  let value = '';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (typeof part === 'string') {
      value += part;
      continue;
    }
    const text = fieldText(event, part);
    if (text === undefined) return undefined;
    value += text;
  }
  // An empty value is no label at all to Loki (as to Prometheus).
  if (value === '') return undefined;
  return value.length > MAX_LABEL_VALUE ? value.slice(0, MAX_LABEL_VALUE) : value;
}

/**
 * Sets `out` to the event's time from `timestamp` or `time` (an RFC 3339-like string, or epoch
 * seconds/ms/µs/ns by magnitude); false when neither holds one.
 */
export function eventTime(event: LogEvent, out: { ms: number; ns: number }): boolean {
  return timeOf(event.timestamp, out) || timeOf(event.time, out);
}

function timeOf(v: unknown, out: { ms: number; ns: number }): boolean {
  if (typeof v === 'string') {
    if (v.length < 8 || !DATE_LIKE.test(v)) return false;
    const ms = Date.parse(v);
    if (!(ms > 0)) return false;
    out.ms = ms;
    const frac = FRACTION.exec(v)?.[1];
    // Date.parse keeps milliseconds; the digits after them are kept as nanoseconds.
    out.ns = frac !== undefined && frac.length > 3 ? Number(frac.slice(3, 9).padEnd(6, '0')) : 0;
    return true;
  }
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) {
    const ns = v < 1e11 ? v * 1e9 : v < 1e14 ? v * 1e6 : v < 1e17 ? v * 1e3 : v;
    out.ms = Math.floor(ns / 1e6);
    out.ns = Math.floor(ns - out.ms * 1e6);
    if (out.ns < 0 || out.ns > 999_999) out.ns = 0;
    return true;
  }
  return false;
}

function nanos(e: Entry): string {
  return `${e.ms}${String(e.ns).padStart(6, '0')}`;
}

function byTime(a: Entry, b: Entry): number {
  return a.ms - b.ms || a.ns - b.ns;
}

export function createLokiDriver(cfg: LokiSinkConfig, deps: DriverDeps = {}): SinkDriver {
  return new LokiDriver(cfg, deps);
}

class LokiDriver implements SinkDriver {
  #http: HttpDelivery;
  #path: string;
  #labels: CompiledLabel[];
  #clock: Clock;
  #scratch: (string | undefined)[];
  #time = { ms: 0, ns: 0 };

  constructor(cfg: LokiSinkConfig, deps: DriverDeps) {
    const url = splitUrl(cfg.url);
    const headers: Record<string, string> = {};
    // Loki behind a gateway is commonly protected by basic auth.
    const user = cfg.user ?? url.user;
    if (user !== undefined) headers.authorization = basicAuth(user, cfg.password ?? url.password);
    if (cfg.tenant !== undefined) headers['x-scope-orgid'] = cfg.tenant;
    this.#clock = deps.clock ?? systemClock;
    this.#http = new HttpDelivery({
      url,
      contentType: 'application/json',
      compression: cfg.compression,
      timeoutMs: cfg.retry.timeout,
      headers,
      secrets: [cfg.password],
      clock: this.#clock,
    });
    this.#path = this.#http.path('/loki/api/v1/push');
    this.#labels = compileLabels(cfg.labels);
    this.#scratch = new Array<string | undefined>(this.#labels.length);
  }

  async send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    const { body, unencodable, lines } = this.#encode(events);
    if (lines === 0) return withUnencodable({ kind: 'ok' }, unencodable);
    const reply = await this.#http.send(this.#path, body, signal);
    if (reply.kind === 'failed') return reply;
    if (reply.status >= 200 && reply.status < 300) return withUnencodable({ kind: 'ok' }, unencodable);
    return this.#http.classify(reply);
  }

  #encode(events: LogEvent[]) {
    const streams = new Map<string, Stream>();
    const unencodable: { event: LogEvent; reason: string }[] = [];
    const labels = this.#labels;
    const scratch = this.#scratch;
    const time = this.#time;
    const now = this.#clock.now();
    let lines = 0;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const line = stringify(event);
      if (line === undefined) {
        unencodable.push({ event, reason: 'the event cannot be encoded as JSON (a BigInt or a cycle)' });
        continue;
      }
      let key = '';
      for (let j = 0; j < labels.length; j++) {
        const v = labelValue(event, labels[j]!);
        scratch[j] = v;
        // Length-prefixed, so no value can imitate another label set.
        if (v !== undefined) key += `${j}:${v.length}:${v}`;
      }
      let stream = streams.get(key);
      if (stream === undefined) {
        stream = { labels: this.#labelSet(), entries: [], sorted: true };
        streams.set(key, stream);
      }
      if (!eventTime(event, time)) {
        time.ms = now;
        time.ns = 0;
      }
      const entries = stream.entries;
      const prev = entries[entries.length - 1];
      if (prev !== undefined && (time.ms < prev.ms || (time.ms === prev.ms && time.ns < prev.ns)))
        stream.sorted = false;
      entries.push({ ms: time.ms, ns: time.ns, line });
      lines++;
    }
    let body = '{"streams":[';
    let first = true;
    for (const stream of streams.values()) {
      // Array.prototype.sort is stable: events with the same time keep their order.
      if (!stream.sorted) stream.entries.sort(byTime);
      body += first ? '{"stream":' : ',{"stream":';
      first = false;
      body += JSON.stringify(stream.labels);
      body += ',"values":[';
      const entries = stream.entries;
      for (let k = 0; k < entries.length; k++) {
        const e = entries[k]!;
        body += k === 0 ? '["' : ',["';
        body += nanos(e);
        body += '",';
        body += JSON.stringify(e.line);
        body += ']';
      }
      body += ']}';
    }
    body += ']}';
    return { body, unencodable, lines };
  }

  /** The labels of the current scratch values (only when a new stream is met). */
  #labelSet(): Record<string, string> {
    const set: Record<string, string> = {};
    let any = false;
    for (let j = 0; j < this.#labels.length; j++) {
      const v = this.#scratch[j];
      if (v === undefined) continue;
      set[this.#labels[j]!.name] = v;
      any = true;
    }
    return any ? set : { ...FALLBACK_LABELS };
  }

  async close(): Promise<void> {
    await this.#http.close();
  }
}
