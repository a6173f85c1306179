// The inbound role: listeners in front of the app. Routes go to the app (the `app` section's
// address) or to named upstreams; the readiness gate holds traffic until the app is healthy.

import type { AppConfig } from '../runtime/config.js';
import type { ModuleDefinition } from '../runtime/module.js';
import { type InboundConfig, listenerMtlsMode } from './config.js';
import { ProxyModule, type ProxySettings } from './proxy-module.js';
import { compileRoutes } from './router.js';

export interface InboundSection {
  inbound: InboundConfig;
  app: AppConfig | undefined;
}

export function inboundSettings(s: InboundSection): ProxySettings {
  const c = s.inbound;
  const upstreams = { ...c.upstreams };
  if (s.app) {
    upstreams.app = {
      endpoints: [{ host: s.app.host, port: s.app.port, weight: 1, labels: {} }],
      protocol: 'http1',
      tls: undefined,
      pool: {
        maxConnections: 1024,
        maxIdle: 64,
        idleTimeout: 30_000,
        maxPending: 1024,
        maxRequests: 0,
        maxRequestsPerConnection: 0,
        maxRetries: 0,
      },
      dnsRefresh: 30_000,
      retryBudget: { ratio: 0.2, minRetriesPerSecond: 10, window: 10_000 },
      subsets: {},
    };
  }
  return {
    section: 'inbound',
    listeners: c.listeners.map((l, i) => ({
      ...l,
      name: l.name ?? `listener-${i}`,
      mtlsMode: listenerMtlsMode(c, l),
    })),
    forwardClientCert: c.mtls?.forwardClientCert ?? false,
    routes: compileRoutes(c.routes),
    upstreams,
    rewriteHost: false,
    timeouts: c.timeouts,
    limits: c.limits,
    http2: c.http2,
    headers: c.headers,
    accessLog: c.accessLog,
    pathWithEscapedSlashes: c.pathWithEscapedSlashes,
    readinessGate: c.readinessGate && s.app !== undefined,
    security: { jwt: c.jwt, authorization: c.authorization, rateLimits: c.rateLimits },
  };
}

export function inboundModule(): ModuleDefinition<InboundSection> {
  return {
    name: 'inbound',
    section: (config) => (config.inbound ? { inbound: config.inbound, app: config.app } : undefined),
    create: (section, ctx) => new ProxyModule(section, inboundSettings, ctx),
  };
}
