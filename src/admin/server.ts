// The admin HTTP server: liveness, readiness, metrics, effective config, reload and quit. It gets
// the few handlers it serves, not the runtime, and refuses state-changing requests sent by web
// pages of another origin (a page a developer has open must not be able to stop their sidecar).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Address, isLoopback, listenOn } from '../lib/address.js';
import { systemClock } from '../lib/clock.js';
import { type ErrorCode, PillionError } from '../lib/errors.js';
import type { TopSampler } from '../top/index.js';
import { type Exposition, sendExposition } from '../metrics/exposition.js';

export interface AdminHandlers {
  readiness(): { ready: boolean; state: string; checks: { name: string; ready: boolean; reason?: string }[] };
  /** The metrics, in the format the Accept header asks for. */
  metrics(accept: string | undefined): Promise<Exposition>;
  config(): Promise<unknown>;
  /** A module's status (undefined when the module is not running). */
  status(module: string): unknown;
  /** Loaded security policies, JWKS state and rate limits (no keys, no tokens). */
  policies(): unknown;
  /** Every upstream of the proxy roles with its endpoints, health and counters (Envoy's /clusters). */
  clusters(): unknown[];
  reload(): Promise<{ ok: boolean }>;
  /** Begins a graceful shutdown; called after the response has been sent. */
  quit(): void;
}

/** What /clusters prints of an upstream (the proxy's ClusterView, seen from here). */
interface ClusterLike {
  section: string;
  name: string;
  stats: Record<string, string | number>;
  endpoints: ({ address: string } & Record<string, unknown>)[];
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export class AdminServer {
  #listen: Address;
  #handlers: AdminHandlers;
  #server: Server;
  #routes: Map<string, Map<string, Handler>>;

  #allowRemote: boolean;
  #env: Readonly<Record<string, string | undefined>>;
  /** Loaded with the first GET /top: the process view costs nothing until asked for. */
  #top: Promise<{ sampler: TopSampler; table: typeof import('../top/index.js').renderTopTable }> | undefined;

  constructor(
    listen: Address,
    handlers: AdminHandlers,
    opts: {
      allowRemote?: boolean;
      probesOnly?: boolean;
      env?: Readonly<Record<string, string | undefined>>;
    } = {},
  ) {
    this.#listen = listen;
    this.#env = opts.env ?? {};
    this.#handlers = handlers;
    // A probes-only server (for the kubelet, on the pod's address) serves nothing that changes or
    // reveals state, so it answers any Host.
    this.#allowRemote = (opts.allowRemote ?? false) || opts.probesOnly === true;
    const probes: [string, Map<string, Handler>][] = [
      ['/healthz', new Map([['GET', (_q, s) => text(s, 200, 'ok\n')]])],
      ['/readyz', new Map([['GET', (_q, s) => this.#readyz(s)]])],
    ];
    this.#routes = new Map<string, Map<string, Handler>>(
      opts.probesOnly ? probes : [...probes, ...this.#apiRoutes()],
    );
    for (const methods of this.#routes.values()) {
      const get = methods.get('GET');
      if (get) methods.set('HEAD', get);
    }
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 5000;
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
  }

  #apiRoutes(): [string, Map<string, Handler>][] {
    return [
      ['/metrics', new Map([['GET', (q, s) => this.#metrics(q, s)]])],
      ['/config', new Map([['GET', async (_q, s) => json(s, 200, await this.#handlers.config())]])],
      ['/identity', new Map([['GET', (_q, s) => this.#status(s, 'identity')]])],
      ['/policies', new Map([['GET', (_q, s) => json(s, 200, this.#handlers.policies())]])],
      ['/sync', new Map([['GET', (_q, s) => this.#status(s, 'sync')]])],
      ['/clusters', new Map([['GET', (q, s) => this.#clusters(q, s)]])],
      ['/top', new Map([['GET', (q, s) => this.#topView(q, s)]])],
      ['/reload', new Map([['POST', (_q, s) => this.#reload(s)]])],
      ['/quitquitquit', new Map([['POST', (_q, s) => this.#quit(s)]])],
    ];
  }

  start(): Promise<void> {
    return listenOn(this.#server, this.#listen, 'PILLION_ERR_ADMIN_LISTEN', 'admin server');
  }

  address(): Address | undefined {
    const a = this.#server.address() as AddressInfo | null;
    return a ? { host: a.address, port: a.port } : undefined;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
      // Nothing the admin API serves is long-running; do not let a stuck client hold up exit.
      setTimeout(() => this.#server.closeAllConnections(), 1000).unref();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#allowRemote && !isLoopbackHost(req.headers.host)) {
      // A page on another site whose name was rebound to 127.0.0.1 sends its own name as Host.
      return error(
        res,
        403,
        'PILLION_ERR_ADMIN_BAD_HOST',
        'the admin API answers only to loopback names (127.0.0.1, [::1], localhost)',
      );
    }
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const methods = this.#routes.get(path);
    if (!methods)
      return error(
        res,
        404,
        'PILLION_ERR_ADMIN_NOT_FOUND',
        this.#routes.has('/metrics')
          ? `no admin endpoint at ${path}; see GET /healthz, /readyz, /metrics, /config, /identity, /policies, /sync, /clusters, /top, POST /reload, /quitquitquit`
          : `no endpoint at ${path}; the probe listener serves GET /healthz and /readyz`,
      );
    const handler = methods.get(req.method ?? 'GET');
    if (!handler) {
      res.setHeader('allow', [...methods.keys()].join(', '));
      return error(
        res,
        405,
        'PILLION_ERR_ADMIN_METHOD_NOT_ALLOWED',
        `${req.method} is not allowed on ${path}; use ${[...methods.keys()].join(' or ')}`,
      );
    }
    if (req.method === 'POST' && isCrossOrigin(req)) {
      return error(
        res,
        403,
        'PILLION_ERR_ADMIN_CROSS_ORIGIN',
        'state-changing admin requests from web pages of another origin are refused',
      );
    }
    try {
      await handler(req, res);
    } catch (err) {
      if (!res.headersSent)
        json(res, 500, {
          error: { code: (err as PillionError).code ?? 'internal', message: (err as Error).message },
        });
      else res.destroy();
    }
  }

  #status(res: ServerResponse, module: string): void {
    const status = this.#handlers.status(module);
    if (status === undefined)
      return error(res, 404, 'PILLION_ERR_ADMIN_NOT_FOUND', `the ${module} role is not configured`);
    json(res, 200, status);
  }

  /** As Envoy's: text lines `upstream::endpoint::stat::value` by default, JSON with ?format=json. */
  #clusters(req: IncomingMessage, res: ServerResponse): void {
    const clusters = this.#handlers.clusters() as ClusterLike[];
    const format = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('format');
    if (format === 'json') return json(res, 200, { clusters });
    let out = '';
    for (const c of clusters) {
      const name = `${c.section}/${c.name}`;
      for (const [k, v] of Object.entries(c.stats)) out += `${name}::${k}::${v}\n`;
      for (const e of c.endpoints)
        for (const [k, v] of Object.entries(e))
          if (k !== 'address' && typeof v !== 'object') out += `${name}::${e.address}::${k}::${v}\n`;
    }
    text(res, 200, out);
  }

  #readyz(res: ServerResponse): void {
    const r = this.#handlers.readiness();
    json(res, r.ready ? 200 : 503, r);
  }

  async #metrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    sendExposition(res, await this.#handlers.metrics(req.headers.accept));
  }

  async #topView(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const q = new URL(req.url ?? '/', 'http://admin').searchParams;
    const sort = q.get('sort') ?? 'cpu';
    const scope = q.get('scope') ?? undefined;
    const limit = q.get('limit');
    if (!['cpu', 'mem', 'pid'].includes(sort))
      return error(res, 400, 'PILLION_ERR_ADMIN_BAD_QUERY', `sort=${sort}: sort by cpu, mem or pid`);
    if (scope !== undefined && !['pod', 'self', 'all'].includes(scope))
      return error(res, 400, 'PILLION_ERR_ADMIN_BAD_QUERY', `scope=${scope}: the scope is pod, self or all`);
    if (limit !== null && !/^[1-9]\d{0,5}$/.test(limit))
      return error(res, 400, 'PILLION_ERR_ADMIN_BAD_QUERY', `limit=${limit}: the limit is a number from 1`);
    this.#top ??= import('../top/index.js').then((t) => ({
      sampler: new t.TopSampler({ clock: systemClock, env: this.#env }),
      table: t.renderTopTable,
    }));
    const top = await this.#top;
    const snapshot = top.sampler.snapshot({
      sort: sort as 'cpu',
      ...(scope !== undefined ? { scope: scope as 'pod' } : {}),
      ...(limit !== null ? { limit: Number(limit) } : {}),
    });
    const accept = req.headers.accept ?? '';
    if (accept.includes('text/plain') && !accept.includes('application/json'))
      return text(res, 200, top.table(snapshot));
    json(res, 200, snapshot);
  }

  async #reload(res: ServerResponse): Promise<void> {
    const outcome = await this.#handlers.reload();
    json(res, outcome.ok ? 200 : 422, outcome);
  }

  #quit(res: ServerResponse): void {
    res.on('finish', () => this.#handlers.quit());
    res.setHeader('connection', 'close');
    text(res, 200, 'shutting down\n');
  }
}

function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 clients and some probes send none
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return isLoopback(name.toLowerCase());
}

function isCrossOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return true;
  const origin = req.headers.origin;
  if (origin === undefined) return false; // curl, probes and scripts send no Origin
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

function error(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  json(res, status, { error: { code, message } });
}
