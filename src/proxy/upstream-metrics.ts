// Metrics per upstream and per endpoint, read from the upstreams' own counters when /metrics is
// scraped: the data path only increments plain numbers on the upstream and endpoint objects.
// One set of families per registry; each proxy module adds its upstreams as a source.

import { counter, gauge, type Registry } from '../metrics/index.js';
import type { Upstream } from './upstream/upstream.js';

export interface UpstreamSource {
  section: string;
  upstreams(): Iterable<Upstream>;
}

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];
const sourcesOf = new WeakMap<Registry, Set<UpstreamSource>>();

/** Adds a proxy module's upstreams to the registry's upstream metrics; returns the remover. */
export function addUpstreamSource(registry: Registry, source: UpstreamSource): () => void {
  let sources = sourcesOf.get(registry);
  if (sources === undefined) {
    sources = new Set();
    sourcesOf.set(registry, sources);
    register(registry, sources);
  }
  sources.add(source);
  return () => sources.delete(source);
}

function register(registry: Registry, sources: Set<UpstreamSource>): void {
  const each = (fn: (section: string, u: Upstream) => void) => {
    for (const s of sources) for (const u of s.upstreams()) fn(s.section, u);
  };
  const up = ['section', 'upstream'] as const;
  const ep = ['section', 'upstream', 'endpoint'] as const;
  const responses = counter(registry, {
    name: 'pillion_upstream_responses_total',
    help: 'Responses the clients got from requests to the upstream, by status class (the proxy’s own 502/503/504 included).',
    labelNames: [...up, 'code_class'],
    collect: () => {
      responses.reset();
      each((section, u) =>
        u.responses.forEach((n, i) => {
          if (n > 0) responses.inc({ section, upstream: u.name, code_class: CLASSES[i]! }, n);
        }),
      );
    },
  });
  const active = gauge(registry, {
    name: 'pillion_upstream_active_requests',
    help: 'Requests in flight to the upstream, those waiting for a connection included.',
    labelNames: up,
    collect: () => {
      active.reset();
      each((section, u) => active.set({ section, upstream: u.name }, u.inflight));
    },
  });
  const pending = gauge(registry, {
    name: 'pillion_upstream_pending_requests',
    help: 'Requests waiting for a pooled connection to the upstream.',
    labelNames: up,
    collect: () => {
      pending.reset();
      each((section, u) => pending.set({ section, upstream: u.name }, u.pool.waiting));
    },
  });
  const endpoints = gauge(registry, {
    name: 'pillion_upstream_endpoints',
    help: 'Endpoints of the upstream, by state: healthy, ejected (outlier detection) or unhealthy (failing active health checks).',
    labelNames: [...up, 'state'],
    collect: () => {
      endpoints.reset();
      each((section, u) => {
        let ejected = 0;
        let unhealthy = 0;
        for (const e of u.endpoints.all)
          if (e.state.unhealthy) unhealthy++;
          else if (e.state.ejectedUntil !== 0) ejected++;
        endpoints.set(
          { section, upstream: u.name, state: 'healthy' },
          u.endpoints.all.length - ejected - unhealthy,
        );
        endpoints.set({ section, upstream: u.name, state: 'ejected' }, ejected);
        if (u.health !== undefined)
          endpoints.set({ section, upstream: u.name, state: 'unhealthy' }, unhealthy);
      });
    },
  });
  const checks = counter(registry, {
    name: 'pillion_upstream_health_checks_total',
    help: 'Active health checks of the upstream’s endpoints, by result: passed, bad_status, timeout, connect_failure.',
    labelNames: [...up, 'result'],
    collect: () => {
      checks.reset();
      each((section, u) => {
        if (u.health === undefined) return;
        for (const [result, n] of Object.entries(u.health.results))
          checks.inc({ section, upstream: u.name, result }, n);
      });
    },
  });
  const ejections = counter(registry, {
    name: 'pillion_upstream_ejections_total',
    help: 'Endpoints ejected by outlier detection.',
    labelNames: up,
    collect: () => {
      ejections.reset();
      each((section, u) => {
        if (u.outlier !== undefined) ejections.inc({ section, upstream: u.name }, u.ejections);
      });
    },
  });
  const tries = counter(registry, {
    name: 'pillion_upstream_endpoint_requests_total',
    help: 'Tries sent to each endpoint (a retried request counts once per try).',
    labelNames: ep,
    collect: () => {
      tries.reset();
      each((section, u) => {
        for (const e of u.endpoints.all)
          tries.inc({ section, upstream: u.name, endpoint: e.key }, e.state.requests);
      });
    },
  });
  const inFlight = gauge(registry, {
    name: 'pillion_upstream_endpoint_active_requests',
    help: 'Tries in flight to each endpoint.',
    labelNames: ep,
    collect: () => {
      inFlight.reset();
      each((section, u) => {
        for (const e of u.endpoints.all)
          inFlight.set({ section, upstream: u.name, endpoint: e.key }, e.state.active);
      });
    },
  });
  const ewma = gauge(registry, {
    name: 'pillion_upstream_endpoint_latency_ewma_seconds',
    help: 'The peak-EWMA balancer’s latency average of each endpoint (upstreams with policy peak-ewma).',
    labelNames: ep,
    collect: () => {
      ewma.reset();
      each((section, u) => {
        if (!u.observesLatency) return;
        for (const e of u.endpoints.all)
          ewma.set({ section, upstream: u.name, endpoint: e.key }, e.state.ewma / 1000);
      });
    },
  });
}
