// Shared by the proxy's socket tests: start an inbound or outbound ProxyModule from a config
// object, start node:http backends on port 0, and talk to the proxy with a raw-socket client that
// writes exact bytes and parses what comes back (including 1xx, chunked bodies and trailers).

import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { type Logger, pino } from 'pino';
import { type Clock, systemClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { createMetricsRegistry, type Registry } from '../metrics/index.js';
import { appSchema } from '../runtime/config.js';
import { HealthSignal } from '../runtime/health-signal.js';
import { inboundSchema, outboundSchema, type OutboundConfig } from './config.js';
import { type InboundSection, inboundSettings } from './inbound.js';
import { outboundSettings } from './outbound.js';
import { ProxyModule } from './proxy-module.js';

/** A port nothing listens on (bound, then released). */
export { freePort } from '../lib/free-port.js';

export interface StartedProxy<S> {
  module: ProxyModule<S>;
  metrics: Registry;
  health: HealthSignal;
  /** Bound port of a listener (by name; default the first). */
  port(name?: string): number;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Port of the app on 127.0.0.1 (inbound only); routes to `app` go there. */
  app?: number;
  health?: HealthSignal;
  metrics?: Registry;
  /** The runtime's shared services (the workload identity's hub, for mutual TLS). */
  services?: Map<string, unknown>;
  clock?: Clock;
  logger?: Logger;
}

/** An inbound proxy from a raw `inbound:` section (schema defaults applied). */
export async function startInbound(
  raw: Record<string, unknown>,
  opts: StartOptions = {},
): Promise<StartedProxy<InboundSection>> {
  const section = inboundSection(raw, opts.app);
  const metrics = opts.metrics ?? createMetricsRegistry();
  const health = opts.health ?? new HealthSignal(true);
  const module = new ProxyModule(section, inboundSettings, deps(metrics, health, opts));
  return started(module, metrics, health);
}

/** An outbound proxy from a raw `outbound:` section; the listener defaults to 127.0.0.1:0. */
export async function startOutbound(
  raw: Record<string, unknown>,
  opts: Omit<StartOptions, 'app'> = {},
): Promise<StartedProxy<OutboundConfig>> {
  const section = outboundSection(raw);
  const metrics = opts.metrics ?? createMetricsRegistry();
  const health = opts.health ?? new HealthSignal(true);
  const module = new ProxyModule(section, outboundSettings, deps(metrics, health, opts));
  return started(module, metrics, health);
}

/** The parsed section startOutbound uses; for reload(). */
export function outboundSection(raw: Record<string, unknown>): OutboundConfig {
  return outboundSchema.parse({ listener: { address: '127.0.0.1:0' }, ...raw });
}

/** The parsed section startInbound uses; for reload(). */
export function inboundSection(raw: Record<string, unknown>, app?: number): InboundSection {
  return {
    inbound: inboundSchema.parse(raw),
    app: app === undefined ? undefined : appSchema.parse({ host: '127.0.0.1', port: app }),
  };
}

function deps(metrics: Registry, appHealth: HealthSignal, opts: Omit<StartOptions, 'app'>) {
  return {
    logger: opts.logger ?? pino({ level: 'silent' }),
    metrics,
    clock: opts.clock ?? systemClock,
    appHealth,
    services: opts.services ?? new Map<string, unknown>(),
  };
}

async function started<S>(module: ProxyModule<S>, metrics: Registry, health: HealthSignal) {
  await module.start();
  let stopped = false;
  return {
    module,
    metrics,
    health,
    port(name?: string): number {
      const addrs = module.addresses();
      const a = name === undefined ? addrs.values().next().value : addrs.get(name);
      if (!a) throw new Error(`no listener ${name ?? ''}`);
      return a.port;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await module.stop();
    },
  };
}

// --- backends -------------------------------------------------------------------------------------

export interface Backend {
  server: http.Server;
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** Requests seen, in order: method, url and headers. */
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** A node:http server on 127.0.0.1:0; the handler answers, the backend records what arrived. */
export async function startBackend(
  handler: http.RequestListener,
  opts: http.ServerOptions & { keepAliveTimeout?: number; host?: string } = {},
): Promise<Backend> {
  const server = http.createServer(opts);
  const b: Backend = {
    server,
    port: 0,
    connections: 0,
    requests: [],
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    b.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.on('connection', () => b.connections++);
  if (opts.keepAliveTimeout !== undefined) server.keepAliveTimeout = opts.keepAliveTimeout;
  b.port = await listen(server, opts.host);
  return b;
}

/** A backend that answers every request with 200 and a JSON echo of what it received. */
export function echoBackend(): Promise<Backend> {
  return startBackend((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

export async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

// --- raw client ------------------------------------------------------------------------------------

export interface RawResponse {
  status: number;
  reason: string;
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  head: string;
  body: Buffer;
  trailers: Record<string, string>;
}

/**
 * A client that writes exact bytes and reads responses one at a time from the same connection.
 * It keeps what it has received in a buffer, so pipelined responses are read in order.
 */
export class RawClient {
  readonly socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  /** How long a read waits before it fails the test instead of hanging it. */
  timeoutMs = 5000;
  /** Resolves when the connection is closed (either side). */
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => {
      this.#buf = this.#buf.length === 0 ? b : Buffer.concat([this.#buf, b]);
      this.#notify();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('error', (err) => {
      this.#error = err;
      this.#ended = true;
      this.#notify();
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.#ended = true;
        this.#notify();
        resolve();
      }),
    );
  }

  static async connect(port: number, opts: { tls?: tls.ConnectionOptions } = {}): Promise<RawClient> {
    const socket = opts.tls
      ? tls.connect({ host: '127.0.0.1', port, ...opts.tls })
      : net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  get ended(): boolean {
    return this.#ended;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  end(data?: string | Buffer): void {
    if (data !== undefined) this.socket.end(data);
    else this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Reads one response; `head: true` for the answer to a HEAD request (no body). */
  async readResponse(opts: { head?: boolean } = {}): Promise<RawResponse> {
    const headEnd = await this.#until(() => this.#buf.indexOf('\r\n\r\n'), 'a response head');
    const head = this.#take(headEnd + 4).toString('latin1');
    const lines = head.slice(0, -4).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]!);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers = fields(lines.slice(1));
    const res: RawResponse = { status, reason: m[2]!, headers, head, body: Buffer.alloc(0), trailers: {} };
    if (status < 200 || status === 204 || status === 304 || opts.head) return res;
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const eol = await this.#until(() => this.#buf.indexOf('\r\n'), 'a chunk size');
        const size = Number.parseInt(this.#take(eol + 2).toString('latin1'), 16);
        if (size === 0) break;
        await this.#until(() => (this.#buf.length >= size + 2 ? 1 : -1), 'chunk data');
        parts.push(this.#take(size));
        this.#take(2);
      }
      const trailerEnd = await this.#until(() => {
        if (this.#buf.subarray(0, 2).toString('latin1') === '\r\n') return 0;
        const i = this.#buf.indexOf('\r\n\r\n');
        return i === -1 ? -1 : i + 2;
      }, 'the end of a chunked body');
      const trailerText = this.#take(trailerEnd + 2).toString('latin1');
      res.trailers = fields(trailerText.split('\r\n').filter((l) => l !== ''));
      res.body = Buffer.concat(parts);
      return res;
    }
    const cl = headers['content-length'];
    if (cl !== undefined) {
      const n = Number(cl);
      await this.#until(() => (this.#buf.length >= n ? 1 : -1), `a body of ${n} bytes`);
      res.body = this.#take(n);
      return res;
    }
    // No length: the body ends at close.
    await this.#until(() => (this.#ended ? 1 : -1), 'the end of the connection', true);
    res.body = this.#take(this.#buf.length);
    return res;
  }

  /** Everything until the connection ends. */
  async readAll(): Promise<Buffer> {
    await this.#until(() => (this.#ended ? 1 : -1), 'the end of the connection', true);
    return this.#take(this.#buf.length);
  }

  /** Resolves true when the peer closes (without sending anything more), false if bytes arrive. */
  async waitClosed(): Promise<boolean> {
    await this.#until(() => (this.#ended || this.#buf.length > 0 ? 1 : -1), 'close', true);
    return this.#buf.length === 0;
  }

  #take(n: number): Buffer {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async #until(check: () => number, what: string, endOk = false): Promise<number> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const v = check();
      if (v >= 0) return v;
      const got = () => JSON.stringify(this.#buf.toString('latin1').slice(0, 200));
      if (this.#ended && !endOk) {
        const why = this.#error ? ` (${this.#error.message})` : '';
        throw new Error(`connection ended while waiting for ${what}${why}; got ${got()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${got()}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }
}

function fields(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const c = line.indexOf(':');
    const name = line.slice(0, c).toLowerCase();
    const value = line.slice(c + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

/** One request on a new connection; the connection is closed after the response. */
export async function rawRequest(
  port: number,
  request: string | Buffer,
  opts: { head?: boolean; tls?: tls.ConnectionOptions } = {},
): Promise<RawResponse> {
  const c = await RawClient.connect(port, opts);
  try {
    c.write(request);
    return await c.readResponse(opts);
  } finally {
    c.destroy();
  }
}

/** "GET path HTTP/1.1" with Host and the given extra header lines. */
export function get(path: string, extra: Record<string, string> = {}, method = 'GET'): string {
  let s = `${method} ${path} HTTP/1.1\r\nHost: test.local\r\n`;
  for (const [k, v] of Object.entries(extra)) s += `${k}: ${v}\r\n`;
  return `${s}\r\n`;
}

/** Waits until the proxy has no client connection and no request in progress (gauges at zero). */
export async function quiet(p: { metrics: Registry }, what = 'the proxy to be quiet'): Promise<void> {
  const gauge = (name: string) => metricValue(p.metrics, name, {});
  await waitFor(
    async () =>
      (await gauge('pillion_proxy_active_connections')) === 0 &&
      (await gauge('pillion_proxy_active_requests')) === 0,
    { what, timeoutMs: 3000 },
  );
}

/** The sum of the series of `name` that carry these labels (0 when none). */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await registry.metrics();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const open = line.indexOf('{');
    const close = line.lastIndexOf('}');
    const have = open === -1 ? '' : line.slice(open + 1, close);
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`)))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The JSON lines of a log file written so far (none while it does not exist yet). */
export function logLines(file: string): Record<string, unknown>[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}
