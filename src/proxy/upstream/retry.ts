// Retries, loaded only where a route or an upstream configures them: a route's retry policy
// compiled to numbers and bit masks (which failures, how many tries, how long to wait), and the
// retry budget an upstream keeps across all its routes so that a failing service is not hit by a
// retry storm. Time and randomness are injected; the back-off is Envoy's full jitter.

import type { Clock } from '../../lib/clock.js';
import type { RetriesConfig, RetryBudgetConfig } from '../config.js';
import type { HeaderCondition } from '../router.js';
import type { RetryOutcome } from '../stats.js';
import type { Upstream } from './upstream.js';

export const ON_5XX = 1;
export const ON_GATEWAY = 2;
export const ON_RESET = 4;
export const ON_CONNECT = 8;
export const ON_REFUSED = 16;
export const ON_4XX = 32;
export const ON_STATUS = 64;
export const ON_HEADERS = 128;

import { F_CONNECT, F_REFUSED, F_RESET, F_RESPONSE } from './resilience.js';

const BITS: Record<string, number> = {
  '5xx': ON_5XX,
  'gateway-error': ON_GATEWAY,
  reset: ON_RESET,
  'connect-failure': ON_CONNECT,
  // HTTP/2's REFUSED_STREAM (an HTTP/1.1 upstream never refuses a stream).
  'refused-stream': ON_REFUSED,
  'retriable-4xx': ON_4XX,
  'retriable-status-codes': ON_STATUS,
  'retriable-headers': ON_HEADERS,
};

export class RetryPolicy {
  /** Tries in all: the first and the retries. */
  readonly maxTries: number;
  readonly perTryTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly #on: number;
  readonly #statuses: Set<number>;
  readonly #headers: HeaderCondition[];
  readonly #baseMs: number;
  readonly #capMs: number;
  readonly #random: () => number;

  constructor(cfg: RetriesConfig, random: () => number = Math.random) {
    this.maxTries = cfg.attempts + 1;
    this.perTryTimeoutMs = cfg.perTryTimeout;
    this.maxBodyBytes = cfg.maxBodySize;
    this.#on = cfg.retryOn.reduce((m, k) => m | (BITS[k] ?? 0), 0);
    this.#statuses = new Set(cfg.retriableStatusCodes);
    this.#headers = cfg.retriableHeaders.map((h) => ({
      lower: h.name.toLowerCase(),
      exact: h.exact,
      re: h.regex !== undefined ? new RegExp(h.regex) : undefined,
      present: h.present ?? true,
    }));
    this.#baseMs = cfg.backoff.base;
    this.#capMs = cfg.backoff.max;
    this.#random = random;
  }

  /** Whether a try that failed this way (F_CONNECT, F_RESET, F_REFUSED, F_TIMEOUT) is retried. */
  onFailure(kind: number): boolean {
    const on = this.#on;
    if (kind === F_CONNECT) return (on & (ON_CONNECT | ON_5XX | ON_GATEWAY)) !== 0;
    if (kind === F_RESET) return (on & (ON_RESET | ON_5XX)) !== 0;
    // A refused stream was never processed: safe to send again under refused-stream, reset or 5xx
    // (Envoy's 5xx includes refused-stream).
    if (kind === F_REFUSED) return (on & (ON_REFUSED | ON_RESET | ON_5XX)) !== 0;
    // A per-try timeout: no response, as a reset; Envoy also retries it on 5xx and gateway-error.
    return (on & (ON_RESET | ON_5XX | ON_GATEWAY)) !== 0;
  }

  /**
   * Whether a try that failed (kind: an F_ constant; F_RESPONSE for a status onResponse chose)
   * is tried again, for both engines alike: what the route retries on, the tries left, what keeps
   * the request from being sent again (`bound`: an upgrade; `bodyLost`: a body too large to keep),
   * the upstream's concurrent-retry limit (`first`: this exchange is not retrying yet) and its
   * budget. The outcome is counted on the upstream and in `stats`; a first retry joins the
   * upstream's count of requests being retried, which the caller releases when the exchange ends.
   */
  decide(
    up: Upstream,
    kind: number,
    tries: number,
    first: boolean,
    bodyLost: boolean,
    bound: boolean,
    stats: { retry(upstream: string, outcome: RetryOutcome): void },
  ): RetryOutcome {
    let outcome: RetryOutcome;
    if (kind !== F_RESPONSE && !this.onFailure(kind)) outcome = 'not_retriable';
    else if (tries >= this.maxTries) outcome = 'attempts_exhausted';
    else if (bound) outcome = 'not_retried_protocol';
    else if (first && up.maxRetries > 0 && up.retrying >= up.maxRetries) outcome = 'retry_overflow';
    else if (bodyLost) outcome = 'body_too_large';
    else if (up.retryBudget !== undefined && !up.retryBudget.withdraw()) outcome = 'budget_exhausted';
    else outcome = 'retried';
    stats.retry(up.name, outcome);
    if (outcome === 'retried') {
      up.retried++;
      if (first) up.retrying++;
    } else if (outcome === 'budget_exhausted') up.budgetExhausted++;
    return outcome;
  }

  /** Whether a response with this status and these headers is retried instead of forwarded. */
  onResponse(status: number, lower: string[], values: string[]): boolean {
    const on = this.#on;
    if (status >= 500 && (on & ON_5XX) !== 0) return true;
    if ((status === 502 || status === 503 || status === 504) && (on & ON_GATEWAY) !== 0) return true;
    if (status === 409 && (on & ON_4XX) !== 0) return true;
    if ((on & ON_STATUS) !== 0 && this.#statuses.has(status)) return true;
    if ((on & ON_HEADERS) !== 0) {
      for (const c of this.#headers) {
        const at = lower.indexOf(c.lower);
        if (at === -1) {
          if (!c.present && c.exact === undefined && c.re === undefined) return true;
          continue;
        }
        const v = values[at]!;
        if (c.exact !== undefined ? v === c.exact : c.re !== undefined ? c.re.test(v) : c.present)
          return true;
      }
    }
    return false;
  }

  /** The wait before retry n (1 for the first retry): uniform in [0, min(cap, base × 2^(n-1))]. */
  backoffMs(n: number): number {
    const ceiling = Math.min(this.#capMs, this.#baseMs * 2 ** Math.min(n - 1, 30));
    return Math.floor(this.#random() * (ceiling + 1));
  }
}

/**
 * Linkerd's retry budget: over the last window, retries may be at most ratio × requests plus
 * minRetriesPerSecond × the window's seconds. Counted in one-second slots on the injected clock.
 */
export class RetryBudget {
  readonly #clock: Clock;
  readonly #ratio: number;
  readonly #floor: number;
  readonly #slots: number;
  readonly #requests: Float64Array;
  readonly #retries: Float64Array;
  #slot = 0;
  #slotAt = 0;
  #requestsSum = 0;
  #retriesSum = 0;

  constructor(cfg: RetryBudgetConfig, clock: Clock) {
    this.#clock = clock;
    this.#ratio = cfg.ratio;
    this.#slots = Math.max(1, Math.round(cfg.window / 1000));
    this.#floor = cfg.minRetriesPerSecond * this.#slots;
    this.#requests = new Float64Array(this.#slots);
    this.#retries = new Float64Array(this.#slots);
    this.#slotAt = Math.floor(clock.now() / 1000);
  }

  /** A request (a first try) went to the upstream. */
  deposit(): void {
    this.#advance();
    this.#requests[this.#slot]!++;
    this.#requestsSum++;
  }

  /** Takes one retry from the budget; false when it is spent. */
  withdraw(): boolean {
    this.#advance();
    if (this.#retriesSum + 1 > this.#floor + this.#ratio * this.#requestsSum) return false;
    this.#retries[this.#slot]!++;
    this.#retriesSum++;
    return true;
  }

  /** Retries still allowed now (for /clusters). */
  get remaining(): number {
    this.#advance();
    return Math.max(0, Math.floor(this.#floor + this.#ratio * this.#requestsSum - this.#retriesSum));
  }

  #advance(): void {
    const sec = Math.floor(this.#clock.now() / 1000);
    let steps = sec - this.#slotAt;
    if (steps <= 0) return;
    if (steps > this.#slots) steps = this.#slots;
    for (let i = 0; i < steps; i++) {
      this.#slot = (this.#slot + 1) % this.#slots;
      this.#requestsSum -= this.#requests[this.#slot]!;
      this.#retriesSum -= this.#retries[this.#slot]!;
      this.#requests[this.#slot] = 0;
      this.#retries[this.#slot] = 0;
    }
    this.#slotAt = sec;
  }
}
