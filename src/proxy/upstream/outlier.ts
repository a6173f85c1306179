// Outlier detection (Envoy's, as Istio's outlierDetection configures it), loaded only by an
// upstream that sets it: endpoints that fail in a row are ejected from balancing for
// baseEjectionTime × the times they were ejected, at most maxEjectionPercent of them at once, and
// returned at the next interval after their time is up. Below minHealthPercent healthy, requests
// go to every endpoint (the panic threshold). Beside the failures in a row, Envoy's failure
// percentage: at each interval, an endpoint that had at least failurePercentageRequestVolume
// requests, a failurePercentageThreshold share of them failed, is ejected (with the probability
// enforcingFailurePercentage, off by default as in Envoy). All on the injected clock.

import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { OutlierDetectionConfig } from '../config.js';
import { type Endpoint, usableEndpoints } from './endpoints.js';

/** Envoy's max_ejection_time default: no ejection lasts longer (unless the base is longer). */
const MAX_EJECTION_MS = 300_000;

export interface OutlierEvents {
  /** The endpoints to balance over changed (an ejection or a return). */
  changed(): void;
  ejected(ep: Endpoint): void;
}

export class OutlierDetector {
  readonly #cfg: OutlierDetectionConfig;
  readonly #clock: Clock;
  readonly #events: OutlierEvents;
  #all: readonly Endpoint[] = [];
  #timer: TimerHandle | undefined;
  #closed = false;

  readonly #random: () => number;

  constructor(
    cfg: OutlierDetectionConfig,
    clock: Clock,
    events: OutlierEvents,
    random: () => number = Math.random,
  ) {
    this.#cfg = cfg;
    this.#clock = clock;
    this.#events = events;
    this.#random = random;
    this.#schedule();
  }

  /** The upstream's endpoints changed. */
  update(all: readonly Endpoint[]): void {
    this.#all = all;
  }

  /** Endpoints to balance over: those not ejected (nor failing health checks), or all of them below minHealthPercent. */
  available(all: readonly Endpoint[]): readonly Endpoint[] {
    return usableEndpoints(all, this.#cfg.minHealthPercent);
  }

  /** The endpoint answered with `status`, or failed without a response (status 0). */
  report(ep: Endpoint, status: number): void {
    const st = ep.state;
    const c = this.#cfg;
    st.windowRequests++;
    if (status !== 0 && status < 500) {
      st.consecutive5xx = 0;
      st.consecutiveGateway = 0;
      st.consecutiveLocal = 0;
      return;
    }
    st.failures++;
    st.windowFailures++;
    const local = status === 0;
    const gateway = local || status === 502 || status === 503 || status === 504;
    st.consecutive5xx++;
    if (gateway) st.consecutiveGateway++;
    else st.consecutiveGateway = 0;
    if (local) st.consecutiveLocal++;
    else st.consecutiveLocal = 0;
    if (st.ejectedUntil !== 0) return;
    if (
      (c.consecutive5xxErrors > 0 && st.consecutive5xx >= c.consecutive5xxErrors) ||
      (c.consecutiveGatewayErrors > 0 && st.consecutiveGateway >= c.consecutiveGatewayErrors) ||
      (c.consecutiveLocalOriginFailures > 0 && st.consecutiveLocal >= c.consecutiveLocalOriginFailures)
    )
      this.#eject(ep);
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
  }

  #eject(ep: Endpoint): void {
    const all = this.#all;
    let ejected = 0;
    for (const e of all) if (e.state.ejectedUntil !== 0) ejected++;
    // Envoy ejects at least one endpoint whatever the percentage.
    const allowed = Math.max(1, Math.floor((all.length * this.#cfg.maxEjectionPercent) / 100));
    if (ejected >= allowed) return;
    const st = ep.state;
    st.ejections++;
    const base = this.#cfg.baseEjectionTime;
    const ms = Math.min(base * st.ejections, Math.max(MAX_EJECTION_MS, base));
    st.ejectedUntil = this.#clock.now() + ms;
    st.consecutive5xx = 0;
    st.consecutiveGateway = 0;
    st.consecutiveLocal = 0;
    this.#events.ejected(ep);
    this.#events.changed();
  }

  /** Envoy's failure-percentage ejection over the interval that ended; the counts start again. */
  #failurePercentage(): void {
    const c = this.#cfg;
    const all = this.#all;
    if (c.enforcingFailurePercentage > 0) {
      let eligible = 0;
      for (const e of all)
        if (e.state.ejectedUntil === 0 && e.state.windowRequests >= c.failurePercentageRequestVolume)
          eligible++;
      if (eligible > 0 && eligible >= c.failurePercentageMinimumHosts)
        for (const e of all) {
          const st = e.state;
          if (st.ejectedUntil !== 0 || st.windowRequests < c.failurePercentageRequestVolume) continue;
          if (st.windowFailures * 100 < c.failurePercentageThreshold * st.windowRequests) continue;
          if (this.#random() * 100 < c.enforcingFailurePercentage) this.#eject(e);
        }
    }
    for (const e of all) {
      e.state.windowRequests = 0;
      e.state.windowFailures = 0;
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => this.#sweep(), this.#cfg.interval);
  }

  /**
   * Returns the endpoints whose ejection is over; one that stayed healthy a while is forgiven one
   * ejection. Then ejects by failure percentage over the interval that ended, and starts the next.
   */
  #sweep(): void {
    const now = this.#clock.now();
    let changed = false;
    this.#failurePercentage();
    for (const e of this.#all) {
      const st = e.state;
      if (st.ejectedUntil !== 0) {
        if (now >= st.ejectedUntil) {
          st.ejectedUntil = 0;
          changed = true;
        }
      } else if (st.ejections > 0 && st.consecutive5xx === 0) {
        // As Envoy: each interval without an ejection brings the multiplier down by one.
        st.ejections--;
      }
    }
    if (changed) this.#events.changed();
    this.#schedule();
  }
}
