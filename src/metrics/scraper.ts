// One scrape target: fetched every interval on the injected clock, its body read up to a bound,
// mapped (JSON rules) or parsed (Prometheus text, OpenMetrics), enriched and relabeled, and held
// as the families /metrics shows. A failed scrape drops them, so Prometheus marks the series
// stale instead of storing a repeated old value; every failure and every skipped value is
// counted with its reason and logged at a rate limit.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { RateLimitedLog } from '../lib/rate-limited-log.js';
import type { ScrapeTarget } from './config.js';
import type { JsonMapper, Skip, SkipReason } from './json-rules.js';
import { type PassthroughSkip, TextPassthrough } from './passthrough.js';
import { TextFormatError } from './prom-text.js';
import type { Counter, Gauge, MetricSnapshot, Registry } from './registry.js';
import { compileRelabel, type Step } from './relabel.js';

export type FailReason =
  'timeout' | 'unreachable' | 'http_status' | 'too_large' | 'bad_json' | 'bad_text' | 'series_limit';

export interface ScrapeMetrics {
  up: Gauge;
  duration: Gauge;
  series: Gauge;
  scrapes: Counter;
  problems: Counter;
}

export interface ScraperDeps {
  clock: Clock;
  logger: Logger;
  registry: Registry;
  metrics: ScrapeMetrics;
  /** The enrichment labels, computed once. */
  labels: readonly (readonly [string, string])[];
  /** The JSON rules compiled (json targets only). */
  mapper?: JsonMapper;
  /** Told after each scrape: its families (none when it failed) and, for JSON, the document. */
  onScrape?: (target: string, families: readonly MetricSnapshot[], doc: unknown) => void;
  /** Measures elapsed time for the duration metric (real time by default). */
  elapsed?: () => number;
}

class ScrapeFailure extends Error {
  constructor(
    readonly reason: FailReason,
    message: string,
  ) {
    super(message);
  }
}

const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

export class Scraper {
  readonly name: string;
  #target: ScrapeTarget;
  #deps: ScraperDeps;
  /** JSON: the relabeling of the mapped families. */
  #relabel: Step;
  /** Text: the series kept from one scrape to the next, enriched and relabeled. */
  #text: TextPassthrough | undefined;
  /** The buffer scrape bodies are read into, kept from one scrape to the next. */
  #body: Buffer | undefined;
  #families: readonly MetricSnapshot[] = [];
  #timer: TimerHandle | undefined;
  #running = false;
  #stopped = false;
  #inFlight: { abort(): void } | undefined;
  #log: RateLimitedLog;
  #lastError: string | undefined;
  #scrapes = 0;

  constructor(name: string, target: ScrapeTarget, deps: ScraperDeps) {
    this.name = name;
    this.#target = target;
    this.#deps = deps;
    this.#relabel = compileRelabel(target.relabel);
    this.#log = new RateLimitedLog(deps.logger, deps.clock);
    if (target.format !== 'json')
      this.#text = new TextPassthrough({
        relabel: target.relabel,
        labels: deps.labels,
        maxLabelValueLength: target.maxLabelValueLength,
        ownsName: (name) => deps.registry.ownsName(name),
        skip: (reason, family, detail) => this.#skip(reason, family, detail),
      });
    deps.metrics.up.set({ target: name }, 0);
  }

  /** The families of the last good scrape (none after a failed one). */
  families(): readonly MetricSnapshot[] {
    return this.#families;
  }

  /** Why the last scrape failed, or undefined when it succeeded (or none ran yet). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  get scrapes(): number {
    return this.#scrapes;
  }

  start(): void {
    this.#running = true;
    this.#schedule(0);
  }

  stop(): void {
    this.#running = false;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#inFlight?.abort();
    this.#families = [];
    this.#body = undefined;
    this.#text?.forget();
    const labels = { target: this.name };
    for (const g of [this.#deps.metrics.up, this.#deps.metrics.duration, this.#deps.metrics.series])
      g.remove(labels);
  }

  #schedule(ms: number): void {
    this.#timer = this.#deps.clock.setTimeout(() => {
      const started = this.#deps.clock.now();
      void this.scrapeOnce().finally(() => {
        if (this.#running)
          this.#schedule(Math.max(0, started + this.#target.interval - this.#deps.clock.now()));
      });
    }, ms);
  }

  /** One scrape, start to end; never throws. */
  async scrapeOnce(): Promise<void> {
    const m = this.#deps.metrics;
    const labels = { target: this.name };
    const elapsed = this.#deps.elapsed ?? realElapsed();
    try {
      const { families, doc } = await this.#scrape();
      if (this.#stopped) return;
      this.#families = families;
      this.#deps.onScrape?.(this.name, families, doc);
      let series = 0;
      for (const f of families) series += f.values.length;
      m.up.set(labels, 1);
      m.series.set(labels, series);
      m.scrapes.inc({ target: this.name, result: 'ok' });
      if (this.#lastError !== undefined)
        this.#deps.logger.info({ target: this.name }, 'scrape succeeds again');
      this.#lastError = undefined;
    } catch (err) {
      const reason = err instanceof ScrapeFailure ? err.reason : 'unreachable';
      this.#families = [];
      this.#text?.forget();
      if (!this.#stopped) this.#deps.onScrape?.(this.name, [], undefined);
      m.up.set(labels, 0);
      m.series.set(labels, 0);
      m.scrapes.inc({ target: this.name, result: reason });
      this.#lastError = `${reason}: ${(err as Error).message}`;
      this.#log.log(
        'warn',
        `fail:${reason}`,
        { target: this.name, url: this.#target.url, reason, err: (err as Error).message },
        "scrape of the app's metrics failed; its series are dropped until a scrape succeeds",
      );
    } finally {
      this.#scrapes++;
      m.duration.set(labels, elapsed());
    }
  }

  async #scrape(): Promise<{ families: MetricSnapshot[]; doc: unknown }> {
    const t = this.#target;
    const { body, contentType } = await this.#fetch();
    let families: MetricSnapshot[];
    let doc: unknown;
    if (t.format === 'json') {
      const bytes = body as Buffer;
      const skip: Skip = (reason, rule, detail) => this.#skip(reason, rule, detail);
      // Read for the rules' paths alone unless a push wants the whole document.
      const mapped = this.#deps.onScrape ? undefined : this.#deps.mapper!.mapBytes(bytes, skip);
      if (mapped !== undefined) families = mapped;
      else {
        try {
          doc = JSON.parse(bytes.toString('utf8'));
        } catch (err) {
          throw new ScrapeFailure(
            'bad_json',
            `the body is not JSON (${contentType ?? 'no content-type'}): ${(err as Error).message}`,
          );
        }
        families = this.#deps.mapper!.map(doc, skip);
      }
      families = this.#clearOfOwnNames(this.#relabel(families));
    } else {
      try {
        families = this.#text!.read(body as string | string[]);
      } catch (err) {
        if (err instanceof TextFormatError) throw new ScrapeFailure('bad_text', err.message);
        throw err;
      }
    }
    let series = 0;
    for (const f of families) series += f.values.length;
    if (series > t.maxSeries)
      throw new ScrapeFailure(
        'series_limit',
        `${series} series exceed maxSeries ${t.maxSeries}; raise metrics.scrape.${this.name}.maxSeries or drop families with relabel`,
      );
    return { families, doc };
  }

  /** A family named as one of pillion's own is exposed as app_NAME, never beside it. */
  #clearOfOwnNames(families: MetricSnapshot[]): MetricSnapshot[] {
    const registry = this.#deps.registry;
    return families.map((f) => {
      if (!registry.ownsName(f.name)) return f;
      const name = `app_${f.name}`;
      this.#skip('name_collision', f.name, `renamed ${name}: pillion exposes ${f.name} itself`);
      const values = f.values.map((v) =>
        v.metricName === undefined ? v : { ...v, metricName: `app_${v.metricName}` },
      );
      return { ...f, name, values };
    });
  }

  #skip(reason: SkipReason | PassthroughSkip, family: string, detail: string): void {
    this.#deps.metrics.problems.inc({ target: this.name, reason });
    this.#log.log(
      'warn',
      `skip:${reason}:${family}`,
      { target: this.name, reason, metric: family, detail },
      reason === 'name_collision'
        ? "an app metric is renamed: its name is one of pillion's"
        : 'a value of the app is left out',
    );
  }

  #fetch(): Promise<{ body: Buffer | string | string[]; contentType: string | undefined }> {
    const t = this.#target;
    // Unset, the timeout is 5 s or the interval when that is shorter, as Prometheus's.
    const timeout = t.timeout ?? Math.min(5000, t.interval);
    const url = new URL(t.url);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (
        err: Error | undefined,
        value?: { body: Buffer | string | string[]; contentType: string | undefined },
      ) => {
        if (done) return;
        done = true;
        timer.cancel();
        this.#inFlight = undefined;
        if (err) reject(err);
        else resolve(value!);
      };
      const req = request(url, {
        method: 'GET',
        agent: false,
        headers: {
          accept: t.format === 'json' ? 'application/json' : PROMETHEUS_ACCEPT,
          'user-agent': 'pillion-metrics',
          ...t.headers,
        },
      });
      const timer = this.#deps.clock.setTimeout(() => {
        req.destroy();
        finish(new ScrapeFailure('timeout', `no complete answer within ${timeout} ms`));
      }, timeout);
      this.#inFlight = {
        abort: () => {
          req.destroy();
          finish(new ScrapeFailure('unreachable', 'stopped'));
        },
      };
      req.on('error', (err: NodeJS.ErrnoException) =>
        finish(new ScrapeFailure('unreachable', `${err.code ?? err.message}`)),
      );
      req.on('response', (res: IncomingMessage) => {
        if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) > 299) {
          res.resume();
          req.destroy();
          return finish(new ScrapeFailure('http_status', `status ${res.statusCode}`));
        }
        const declared = Number(res.headers['content-length']);
        if (declared > t.maxBodySize) {
          req.destroy();
          return finish(
            new ScrapeFailure('too_large', `content-length ${declared} over maxBodySize ${t.maxBodySize}`),
          );
        }
        // Read into the buffer of the last scrape (grown when a body is larger, up to
        // maxBodySize): a body of some MB is not allocated anew at every scrape. Taken while in
        // use, so a second scrape running at the same time reads into a buffer of its own.
        let buf = this.#body;
        this.#body = undefined;
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size + c.length > t.maxBodySize) {
            req.destroy();
            finish(new ScrapeFailure('too_large', `body over maxBodySize ${t.maxBodySize} bytes`));
            return;
          }
          if (buf === undefined || buf.length < size + c.length) {
            const want = Math.max(size + c.length, declared || 0, 2 * (buf?.length ?? 32_768));
            const grown = Buffer.allocUnsafe(Math.min(t.maxBodySize, want));
            if (buf !== undefined) buf.copy(grown, 0, 0, size);
            buf = grown;
          }
          c.copy(buf, size);
          size += c.length;
        });
        res.on('end', () => {
          // JSON is read from its bytes (used before the next scrape can take the buffer); text
          // line by line, so it is decoded in pieces of whole lines: a body of a megabyte is
          // then no large string kept until a full collection.
          const body =
            t.format === 'json'
              ? (buf ?? Buffer.alloc(0)).subarray(0, size)
              : buf === undefined
                ? ''
                : linePieces(buf, size);
          this.#body = buf;
          finish(undefined, { body, contentType: res.headers['content-type'] });
        });
        res.on('error', (err) => finish(new ScrapeFailure('unreachable', err.message)));
      });
      req.end();
    });
  }
}

/** The text of buf[0, size) as strings of about PIECE bytes, each ending at a line's end. */
export function linePieces(buf: Buffer, size: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (start < size) {
    // A newline byte is never part of a longer UTF-8 character: a cut after one splits none.
    let end = start + PIECE >= size ? size : buf.indexOf(10, start + PIECE) + 1;
    if (end <= 0 || end > size) end = size;
    pieces.push(buf.toString('utf8', start, end));
    start = end;
  }
  return pieces;
}

const PIECE = 32_768;

function realElapsed(): () => number {
  const start = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - start) / 1e9;
}
