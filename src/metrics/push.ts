// Pushing the app's metrics after each scrape, for places nothing scrapes: the seed's JSON POST
// (each scrape an enriched document, batched, held in a bounded buffer while the endpoint is
// down) and a Prometheus Pushgateway (the group replaced by the newest state; a failed scrape
// empties it). Retries back off with full jitter on the injected clock; what cannot be kept is
// dropped, counted with its reason and logged at a rate limit.

import type { Logger } from 'pino';
import { retryDelay } from '../lib/backoff.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { RateLimitedLog } from '../lib/rate-limited-log.js';
import type { PushConfig } from './config.js';
import { renderText } from './exposition.js';
import type { Counter, Gauge, MetricSnapshot } from './registry.js';

export interface PushMetrics {
  pushes: Counter;
  dropped: Counter;
  queued: Gauge;
}

export interface PushDeps {
  clock: Clock;
  logger: Logger;
  metrics: PushMetrics;
  /** The enrichment labels (the JSON document carries them). */
  labels: Readonly<Record<string, string>>;
  random?: () => number;
  /** The HTTP client (fetch); a test may count calls. */
  fetch?: typeof fetch;
}

export interface Pusher {
  readonly name: string;
  /** A scrape's outcome: its families (none when it failed) and the app's JSON document. */
  offer(target: string, families: readonly MetricSnapshot[], doc: unknown): void;
  stop(): void;
  /** Why the last push failed, or undefined. */
  readonly lastError: string | undefined;
}

export async function createPusher(name: string, config: PushConfig, deps: PushDeps): Promise<Pusher> {
  if (config.type === 'json') return new JsonPusher(name, config, deps);
  if (config.type === 'pushgateway') return new PushgatewayPusher(name, config, deps);
  // OpenTelemetry's serializer (and what it needs) loads only with an otlp push.
  const { OtlpPusher } = await import('./otlp.js');
  return new OtlpPusher(name, config, deps);
}

/** One delivery loop: send, and on failure retry with back-off until it succeeds or is stopped. */
export abstract class Delivery {
  readonly name: string;
  protected deps: PushDeps;
  protected config: PushConfig;
  #timer: TimerHandle | undefined;
  #timerAt = 0;
  #backingOff = false;
  #inFlight = false;
  #attempt = 0;
  #stopped = false;
  #log: RateLimitedLog;
  lastError: string | undefined;

  constructor(name: string, config: PushConfig, deps: PushDeps) {
    this.name = name;
    this.config = config;
    this.deps = deps;
    this.#log = new RateLimitedLog(deps.logger, deps.clock);
  }

  /** What to send now, or undefined when nothing is pending. */
  protected abstract next():
    { method: string; url: string; body: string | Uint8Array; type: string } | undefined;
  /** The sent request succeeded. */
  protected abstract sent(): void;
  /** The sent request failed: what it carried is to be sent again. */
  protected abstract failed(): void;

  /** Sends after ms, or sooner if a send is already due sooner; a retry's back-off is kept. */
  protected schedule(ms: number, retry = false): void {
    if (this.#stopped || this.#inFlight) return;
    const at = this.deps.clock.now() + ms;
    if (this.#timer) {
      if (this.#backingOff || at >= this.#timerAt) return;
      this.#timer.cancel();
    }
    this.#backingOff = retry;
    this.#timerAt = at;
    this.#timer = this.deps.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#backingOff = false;
      void this.#send();
    }, ms);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  async #send(): Promise<void> {
    const req = this.next();
    if (!req || this.#stopped) return;
    this.#inFlight = true;
    const labels = { push: this.name };
    let failure: string | undefined;
    try {
      const res = await (this.deps.fetch ?? fetch)(req.url, {
        method: req.method,
        headers: { 'content-type': req.type, 'user-agent': 'pillion-metrics', ...this.config.headers },
        body: req.body,
        signal: AbortSignal.timeout(this.config.timeout),
      });
      const text = await res.text();
      if (!res.ok) failure = `status ${res.status}: ${text.slice(0, 200).trim()}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      failure = e.cause?.code ?? e.message;
    }
    this.#inFlight = false;
    if (this.#stopped) return;
    if (failure === undefined) {
      this.deps.metrics.pushes.inc({ ...labels, result: 'ok' });
      if (this.lastError !== undefined) this.deps.logger.info({ push: this.name }, 'push succeeds again');
      this.lastError = undefined;
      this.#attempt = 0;
      this.sent();
      return;
    }
    this.deps.metrics.pushes.inc({ ...labels, result: 'failed' });
    this.lastError = failure;
    this.failed();
    const delay = retryDelay(this.#attempt++, this.config.retry, this.deps.random ?? Math.random);
    this.#log.log(
      'warn',
      'failed',
      { push: this.name, url: this.config.url, err: failure, retryInMs: Math.round(delay) },
      'push of the metrics failed; retrying',
    );
    this.schedule(delay, true);
  }

  protected drop(reason: string, n: number): void {
    this.deps.metrics.dropped.inc({ push: this.name, reason }, n);
    this.#log.log(
      'warn',
      `drop:${reason}`,
      { push: this.name, reason, dropped: n },
      'pushed metrics dropped',
    );
  }
}

type JsonPush = Extract<PushConfig, { type: 'json' }>;

class JsonPusher extends Delivery implements Pusher {
  #queue: unknown[] = [];
  #sending = 0;

  offer(target: string, families: readonly MetricSnapshot[], doc: unknown): void {
    if (families.length === 0 && doc === undefined) return; // a failed scrape has no document
    const c = this.config as JsonPush;
    this.#queue.push({
      target,
      timestamp: new Date(this.deps.clock.now()).toISOString(),
      labels: this.deps.labels,
      ...(doc !== undefined ? { document: doc } : {}),
      series: families.flatMap((f) =>
        f.values.map((v) => ({
          name: v.metricName ?? f.name,
          type: f.type,
          labels: v.labels,
          value: v.value,
        })),
      ),
    });
    // The oldest not in flight go first when the buffer is full.
    let dropped = 0;
    while (this.#queue.length > c.maxBufferedDocuments && this.#queue.length > this.#sending) {
      this.#queue.splice(this.#sending, 1);
      dropped++;
    }
    if (dropped > 0) this.drop('buffer_full', dropped);
    this.deps.metrics.queued.set({ push: this.name }, this.#queue.length);
    this.schedule(this.#queue.length >= c.batch.maxDocuments ? 0 : c.batch.maxAge);
  }

  protected next() {
    if (this.#queue.length === 0) return undefined;
    const c = this.config as JsonPush;
    this.#sending = Math.min(this.#queue.length, c.batch.maxDocuments);
    return {
      method: 'POST',
      url: c.url,
      type: 'application/json',
      body: JSON.stringify(this.#queue.slice(0, this.#sending)),
    };
  }

  protected failed(): void {
    this.#sending = 0;
  }

  /** Documents still held when the push stops (a reload, a shutdown) are counted, not lost silently. */
  override stop(): void {
    super.stop();
    if (this.#queue.length > 0) this.drop('stopped', this.#queue.length);
    this.#queue = [];
    this.deps.metrics.queued.set({ push: this.name }, 0);
  }

  protected sent(): void {
    this.#queue.splice(0, this.#sending);
    this.#sending = 0;
    this.deps.metrics.queued.set({ push: this.name }, this.#queue.length);
    if (this.#queue.length > 0) this.schedule(0);
  }
}

/**
 * A push that keeps only the newest state of each target while the receiver is down (the
 * Pushgateway, OTLP): a scrape replaces what the last one offered, and a failed push sends the
 * newest state again. Subclasses say how the families, merged by name, become a request.
 */
export abstract class LatestStatePusher extends Delivery implements Pusher {
  #latest = new Map<string, readonly MetricSnapshot[]>();
  #dirty = false;

  offer(target: string, families: readonly MetricSnapshot[]): void {
    this.#latest.set(target, families);
    this.#dirty = true;
    this.deps.metrics.queued.set({ push: this.name }, 1);
    this.schedule(0);
  }

  protected next() {
    if (!this.#dirty) return undefined;
    this.#dirty = false;
    // One family per name across targets, as the exposition does.
    const merged = new Map<string, MetricSnapshot>();
    for (const fs of this.#latest.values())
      for (const f of fs) {
        const into = merged.get(f.name);
        merged.set(f.name, into ? { ...into, values: [...into.values, ...f.values] } : f);
      }
    return this.request([...merged.values()], [...this.#latest.keys()]);
  }

  /** The request that sends these families (one per name) of these targets. */
  protected abstract request(
    families: MetricSnapshot[],
    targets: string[],
  ): { method: string; url: string; type: string; body: string | Uint8Array };

  protected sent(): void {
    if (this.#dirty) this.schedule(0);
    else this.deps.metrics.queued.set({ push: this.name }, 0);
  }

  /** The newest state is sent again (a newer scrape may have replaced it meanwhile). */
  protected failed(): void {
    this.#dirty = true;
  }
}

type GatewayPush = Extract<PushConfig, { type: 'pushgateway' }>;

class PushgatewayPusher extends LatestStatePusher {
  #url: string;

  constructor(name: string, config: PushConfig, deps: PushDeps) {
    super(name, config, deps);
    const c = config as GatewayPush;
    // Label values with a slash go base64url-encoded, as the Pushgateway's API asks.
    const segment = (label: string, value: string) =>
      value.includes('/')
        ? `/${label}@base64/${Buffer.from(value).toString('base64url')}`
        : `/${label}/${encodeURIComponent(value)}`;
    this.#url = `${c.url.replace(/\/+$/, '')}/metrics${segment('job', c.job)}${Object.entries(c.grouping)
      .map(([k, v]) => segment(k, v))
      .join('')}`;
  }

  protected request(families: MetricSnapshot[]) {
    return {
      method: 'PUT',
      url: this.#url,
      type: 'text/plain; version=0.0.4; charset=utf-8',
      body: renderText(families),
    };
  }
}
