// The outbound role (the ambassador): the app calls http://127.0.0.1:15001/<upstream>/path, or
// sends `Host: <upstream>`, and the request goes to that upstream's endpoints with the Host
// rewritten to the service's own name.

import type { ModuleDefinition } from '../runtime/module.js';
import type { OutboundConfig, RouteConfig } from './config.js';
import { ProxyModule, type ProxySettings } from './proxy-module.js';
import { type CompiledRoute, compileRoute, compileRoutes } from './router.js';
import { Upstream } from './upstream/upstream.js';

const EMPTY_EDITS = { add: {}, remove: [] };
/** Outbound routes are made here, not configured: they tunnel what inbound routes do by default. */
const UPGRADES = ['websocket'];

export function outboundSettings(c: OutboundConfig): ProxySettings {
  // The configured routes first, their Host rewritten to their upstream's as the made ones are.
  const hostOf = (u: string) =>
    c.upstreams[u] !== undefined ? Upstream.hostHeaderOf(u, c.upstreams[u]) : undefined;
  const routes: CompiledRoute[] = compileRoutes(c.routes, hostOf);
  for (const [name, up] of Object.entries(c.upstreams)) {
    const host = Upstream.hostHeaderOf(name, up);
    const byHost: RouteConfig = {
      name: `${name}-host`,
      match: { host: name, headers: [], query: [] },
      upstream: name,
      requestHeaders: EMPTY_EDITS,
      responseHeaders: EMPTY_EDITS,
      upgradeProtocols: UPGRADES,
    };
    const byPath: RouteConfig = {
      name,
      match: { prefix: `/${name}`, headers: [], query: [] },
      upstream: name,
      rewritePrefix: '/',
      requestHeaders: EMPTY_EDITS,
      responseHeaders: EMPTY_EDITS,
      upgradeProtocols: UPGRADES,
    };
    routes.push(compileRoute(byHost, routes.length, host), compileRoute(byPath, routes.length + 1, host));
  }
  return {
    section: 'outbound',
    listeners: [
      {
        name: 'outbound',
        address: c.listener.address,
        mode: 'http',
        http2: c.listener.http2,
        mtlsMode: 'DISABLE',
      },
    ],
    forwardClientCert: false,
    routes,
    upstreams: c.upstreams,
    rewriteHost: true,
    timeouts: c.timeouts,
    limits: c.limits,
    http2: c.http2,
    headers: c.headers,
    accessLog: c.accessLog,
    pathWithEscapedSlashes: c.pathWithEscapedSlashes,
    readinessGate: false,
    security: undefined,
  };
}

export function outboundModule(): ModuleDefinition<OutboundConfig> {
  return {
    name: 'outbound',
    section: (config) => config.outbound,
    create: (section, ctx) => new ProxyModule(section, outboundSettings, ctx),
  };
}
