// The `app` module: checks the app's health on an interval and publishes it, so /readyz and the
// inbound proxy can hold traffic until the app answers. Healthy after healthyThreshold passes in a
// row, unhealthy after unhealthyThreshold failures in a row; unhealthy until the first passes.

import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { counter, gauge, type Registry } from '../metrics/index.js';
import { type Probe, type ProbeTarget, probeApp } from './app-probe.js';
import type { AppConfig } from './config.js';
import type { HealthSignal } from './health-signal.js';
import type { Module, ModuleDefinition, Readiness, ReloadResult } from './module.js';

export class AppHealthModule implements Module<AppConfig> {
  #config: AppConfig;
  #clock: Clock;
  #logger: Logger;
  #signal: HealthSignal;
  #probe: Probe;
  #timer: TimerHandle | undefined;
  #running = false;
  #passes = 0;
  #failures = 0;
  #generation = 0;
  #abort = new AbortController();
  #healthyGauge;
  #checks;

  constructor(
    config: AppConfig,
    deps: { clock: Clock; logger: Logger; signal: HealthSignal; metrics: Registry; probe?: Probe },
  ) {
    this.#config = config;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#signal = deps.signal;
    this.#probe = deps.probe ?? probeApp;
    this.#healthyGauge = gauge(deps.metrics, {
      name: 'pillion_app_healthy',
      help: '1 when the app passes its health check.',
    });
    this.#checks = counter(deps.metrics, {
      name: 'pillion_app_health_checks_total',
      help: 'Health checks of the app, by result.',
      labelNames: ['result'],
    });
    this.#signal.set(false, 'not checked yet');
    this.#healthyGauge.set(0);
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#schedule(0);
  }

  async reload(config: AppConfig): Promise<ReloadResult> {
    this.#config = config;
    this.#passes = 0;
    this.#failures = 0;
    // A check of the old target still in flight must neither count nor schedule another loop.
    this.#generation++;
    // Check the new target at once rather than after a whole interval; the current state stands until then.
    this.#timer?.cancel();
    if (this.#running) this.#schedule(0);
    return 'applied';
  }

  async drain(): Promise<void> {}

  async stop(): Promise<void> {
    this.#running = false;
    this.#generation++;
    this.#timer?.cancel();
    this.#abort.abort(); // a check in flight ends now, not at its timeout
  }

  readiness(): Readiness {
    return this.#signal.healthy
      ? { ready: true }
      : { ready: false, reason: `app unhealthy: ${this.#signal.reason ?? 'unknown'}` };
  }

  #schedule(ms: number): void {
    const generation = this.#generation;
    this.#timer = this.#clock.setTimeout(() => {
      this.#check(generation).catch((err: unknown) =>
        this.#logger.error({ err }, 'app health check failed unexpectedly'),
      );
    }, ms);
  }

  async #check(generation: number): Promise<void> {
    const c = this.#config;
    const target: ProbeTarget = {
      host: c.host,
      port: c.port,
      protocol: c.health.protocol,
      path: c.health.path,
      timeoutMs: c.health.timeout,
    };
    const result = await this.#probe(target, this.#abort.signal);
    if (!this.#running || generation !== this.#generation) return;
    this.#checks.inc({ result: result.ok ? 'pass' : 'fail' });
    if (result.ok) {
      this.#failures = 0;
      this.#passes++;
      if (!this.#signal.healthy && this.#passes >= c.health.healthyThreshold) {
        this.#logger.info({ target: `${c.host}:${c.port}` }, 'app is healthy');
        this.#signal.set(true);
        this.#healthyGauge.set(1);
      }
    } else {
      this.#passes = 0;
      this.#failures++;
      const wasHealthy = this.#signal.healthy;
      if (!wasHealthy) {
        this.#signal.set(false, result.reason); // keep the newest reason while waiting for the app
      } else if (this.#failures >= c.health.unhealthyThreshold) {
        this.#logger.warn({ reason: result.reason }, 'app is unhealthy');
        this.#signal.set(false, result.reason);
        this.#healthyGauge.set(0);
      }
    }
    this.#schedule(c.health.interval);
  }
}

export function appModule(probe?: Probe): ModuleDefinition<AppConfig> {
  return {
    name: 'app',
    section: (config) => config.app,
    create: (section, ctx) =>
      new AppHealthModule(section, {
        clock: ctx.clock,
        logger: ctx.logger,
        signal: ctx.appHealth,
        metrics: ctx.metrics,
        ...(probe ? { probe } : {}),
      }),
  };
}
