// Support for the wire-level tests of the HTTP/1.1 proxy (the smuggling corpus and the differential
// test): a proxy started from an inbound section, backends that record exactly what reaches them,
// and a client that writes exact bytes and reads what comes back.

import net from 'node:net';
import { pino } from 'pino';
import { systemClock } from '../../lib/clock.js';
import { createMetricsRegistry } from '../../metrics/index.js';
import { HealthSignal } from '../../runtime/health-signal.js';
import { inboundSchema } from '../config.js';
import { type InboundSection, inboundSettings } from '../inbound.js';
import { ProxyModule } from '../proxy-module.js';

export interface TestProxy {
  port: number;
  stop(): Promise<void>;
}

/** A proxy on 127.0.0.1:0 whose one route forwards everything to 127.0.0.1:backendPort. */
export async function startProxy(
  backendPort: number,
  extra: Record<string, unknown> = {},
): Promise<TestProxy> {
  const section: InboundSection = {
    inbound: inboundSchema.parse({
      listeners: [{ address: '127.0.0.1:0' }],
      routes: [{ upstream: 'backend' }],
      upstreams: { backend: { endpoints: [`127.0.0.1:${backendPort}`] } },
      ...extra,
    }),
    app: undefined,
  };
  const module = new ProxyModule(section, inboundSettings, {
    logger: pino({ level: 'silent' }),
    metrics: createMetricsRegistry(),
    clock: systemClock,
    appHealth: new HealthSignal(true),
  });
  await module.start();
  const port = module.addresses().values().next().value!.port;
  return { port, stop: () => module.stop() };
}

export async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

export const BACKEND_RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

/**
 * A TCP backend that records every byte and every connection, and answers each request it can
 * frame with BACKEND_RESPONSE. Its framing reader is deliberately simple: it only has to follow
 * what the proxy forwards (one Content-Length or chunked), never what clients send.
 */
export class RawBackend {
  readonly server: net.Server;
  port = 0;
  /** Since the last reset. */
  connections = 0;
  requests = 0;
  #received: Buffer[] = [];
  #sockets = new Set<net.Socket>();

  constructor() {
    this.server = net.createServer((socket) => {
      this.connections++;
      this.#sockets.add(socket);
      let buf = Buffer.alloc(0);
      socket.on('data', (b: Buffer) => {
        this.#received.push(b);
        buf = Buffer.concat([buf, b]);
        for (;;) {
          const n = frameLength(buf);
          if (n < 0) break;
          buf = buf.subarray(n);
          this.requests++;
          socket.write(BACKEND_RESPONSE);
        }
      });
      socket.on('error', () => socket.destroy());
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  received(): Buffer {
    return Buffer.concat(this.#received);
  }

  reset(): void {
    this.connections = 0;
    this.requests = 0;
    this.#received = [];
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Length of the first complete request in buf, or -1. */
function frameLength(buf: Buffer): number {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd === -1) return -1;
  const head = buf.toString('latin1', 0, headEnd).toLowerCase();
  let p = headEnd + 4;
  const cl = /\r\ncontent-length: *(\d+)/.exec(head);
  if (cl) return buf.length - p >= Number(cl[1]) ? p + Number(cl[1]) : -1;
  if (!/\r\ntransfer-encoding: *chunked/.test(head)) return p;
  for (;;) {
    const eol = buf.indexOf('\r\n', p);
    if (eol === -1) return -1;
    const size = Number.parseInt(buf.toString('latin1', p, eol), 16);
    if (Number.isNaN(size)) return -1;
    p = eol + 2;
    if (size === 0) break;
    p += size + 2;
    if (p > buf.length) return -1;
  }
  // Trailer lines, up to the empty one.
  for (;;) {
    const eol = buf.indexOf('\r\n', p);
    if (eol === -1) return -1;
    const empty = eol === p;
    p = eol + 2;
    if (empty) return p;
  }
}

export interface RawResponse {
  status: number;
  /** Lower-case names; repeats joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

/** A client connection that writes exact bytes and reads responses (with Content-Length) in order. */
export class RawClient {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, b]);
      this.#notify();
    });
    const ended = () => {
      this.#ended = true;
      this.#notify();
    };
    socket.on('end', ended);
    socket.on('close', ended);
    // A reset after the proxy closed is an ending like any other here.
    socket.on('error', ended);
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** The next response, or undefined when the connection ends first. */
  async readResponse(): Promise<RawResponse | undefined> {
    const headEnd = await this.#until(() => this.#buf.indexOf('\r\n\r\n'));
    if (headEnd === -1) return undefined;
    const lines = this.#buf.toString('latin1', 0, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      const name = line.slice(0, c).toLowerCase();
      const value = line.slice(c + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const n = Number(headers['content-length'] ?? 0);
    const start = headEnd + 4;
    if ((await this.#until(() => (this.#buf.length >= start + n ? 1 : -1))) === -1) return undefined;
    const body = this.#buf.subarray(start, start + n);
    this.#buf = this.#buf.subarray(start + n);
    return { status: Number(m[1]), headers, body };
  }

  /** Resolves when the peer has closed; true when nothing more arrived before that. */
  async closed(): Promise<boolean> {
    await this.#until(() => -1);
    return this.#buf.length === 0;
  }

  get ended(): boolean {
    return this.#ended;
  }

  destroy(): void {
    this.socket.destroy();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Waits until check() is not negative, or the connection has ended (then -1). */
  async #until(check: () => number): Promise<number> {
    for (;;) {
      const v = check();
      if (v >= 0) return v;
      if (this.#ended) return -1;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
