// Active health checks (Envoy's health_checks, haproxy's `check rise fall`), loaded only by an
// upstream that sets healthCheck: every endpoint is checked each round (an HTTP GET whose status
// must be expected, or a TCP connect); unhealthyThreshold failures in a row take it out of
// balancing, healthyThreshold passes in a row bring it back. Rounds and timeouts run on the
// injected clock; the next round starts an interval (plus jitter) after the last one ended.

import type { Clock, TimerHandle } from '../../lib/clock.js';
import { type CheckOutcome, httpCheck, tcpCheck } from '../../lib/net-check.js';
import type { HealthCheckConfig } from '../config.js';
import { connectEndpoint, type Endpoint, type EndpointTls } from './endpoints.js';

/** What a check found; every check is counted under one of these. */
export type CheckResult = 'passed' | 'bad_status' | 'timeout' | 'connect_failure';

/** One check of one endpoint; ends when `signal` aborts (the timeout, or the upstream closing). */
export type HealthProbe = (ep: Endpoint, signal: AbortSignal) => Promise<CheckOutcome>;

export interface HealthCheckDeps {
  clock: Clock;
  random: () => number;
  /** The endpoints to check this round. */
  endpoints(): readonly Endpoint[];
  /** Host header of HTTP checks, and how connections to the upstream are secured. */
  hostHeader: string;
  tls: EndpointTls | undefined;
  /** An endpoint became unhealthy or healthy again. */
  changed(ep: Endpoint): void;
  /** Replaces the network check (tests on fake time). */
  probe?: HealthProbe;
}

export class HealthChecker {
  /** Checks made, by result. */
  readonly results: Record<CheckResult, number> = {
    passed: 0,
    bad_status: 0,
    timeout: 0,
    connect_failure: 0,
  };
  readonly #cfg: HealthCheckConfig;
  readonly #deps: HealthCheckDeps;
  readonly #probe: HealthProbe;
  readonly #running = new Set<AbortController>();
  #timer: TimerHandle | undefined;
  #closed = false;

  constructor(cfg: HealthCheckConfig, deps: HealthCheckDeps) {
    this.#cfg = cfg;
    this.#deps = deps;
    this.#probe = deps.probe ?? this.#networkProbe.bind(this);
    // The first round at once: an endpoint that is down is known about a few checks after start.
    this.#timer = deps.clock.setTimeout(() => void this.#round(), 0);
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    for (const c of this.#running) c.abort();
  }

  async #round(): Promise<void> {
    const list = this.#deps.endpoints();
    await Promise.all(list.map((ep) => this.#checkOne(ep)));
    if (this.#closed) return;
    const c = this.#cfg;
    const wait = c.interval + (c.jitter > 0 ? Math.floor(this.#deps.random() * c.jitter) : 0);
    this.#timer = this.#deps.clock.setTimeout(() => void this.#round(), wait);
  }

  async #checkOne(ep: Endpoint): Promise<void> {
    const ac = new AbortController();
    this.#running.add(ac);
    let timedOut = false;
    const timer = this.#deps.clock.setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.#cfg.timeout);
    let outcome: CheckOutcome;
    try {
      outcome = await this.#probe(ep, ac.signal);
    } catch (err) {
      outcome = { kind: 'error', code: 'error', message: (err as Error).message };
    } finally {
      timer.cancel();
      this.#running.delete(ac);
    }
    if (this.#closed) return;
    const [result, why] = timedOut
      ? (['timeout', `no answer within ${this.#cfg.timeout}ms`] as const)
      : this.#judge(outcome);
    this.results[result]++;
    const st = ep.state;
    if (result === 'passed') {
      st.checksPassed++;
      st.checksFailed = 0;
      if (st.unhealthy && st.checksPassed >= this.#cfg.healthyThreshold) {
        st.unhealthy = false;
        this.#deps.changed(ep);
      }
    } else {
      st.checksFailed++;
      st.checksPassed = 0;
      st.lastCheckFailure = why;
      if (!st.unhealthy && st.checksFailed >= this.#cfg.unhealthyThreshold) {
        st.unhealthy = true;
        this.#deps.changed(ep);
      }
    }
  }

  #judge(o: CheckOutcome): readonly [CheckResult, string] {
    switch (o.kind) {
      case 'connected':
        return ['passed', ''];
      case 'status':
        return this.#cfg.expectedStatuses!.some(([lo, hi]) => o.status >= lo && o.status <= hi)
          ? ['passed', '']
          : ['bad_status', `GET ${this.#cfg.path} answered ${o.status}`];
      case 'timeout':
      case 'aborted':
        return ['timeout', `no answer within ${this.#cfg.timeout}ms`];
      case 'error':
        return ['connect_failure', `${o.code}: ${o.message}`];
    }
  }

  #networkProbe(ep: Endpoint, signal: AbortSignal): Promise<CheckOutcome> {
    const c = this.#cfg;
    // The socket's own timeout only backs up the clock's, which aborts the signal first.
    const timeoutMs = c.timeout + 1000;
    if (c.type === 'tcp') return tcpCheck({ host: ep.ip, port: ep.port, timeoutMs, signal });
    const tls = this.#deps.tls;
    return httpCheck({
      host: ep.ip,
      port: ep.port,
      path: c.path!,
      timeoutMs,
      signal,
      headers: {
        host: this.#deps.hostHeader,
        'user-agent': 'pillion-health/1',
        accept: '*/*',
      },
      // Over TLS as the upstream's requests go: the same server name, CA and (mutual) identity checks.
      connect: tls ? () => connectEndpoint(ep, tls) : undefined,
    });
  }
}
