// The syslog sink: RFC 5424 messages with octet-counting framing (RFC 6587) over one persistent
// TCP or TLS (RFC 5425) connection, reconnected on the send after an error.
//
// Neither RFC 5425 nor RFC 6587 has an application-level acknowledgement, so a batch counts as
// delivered once the socket has taken all of it (the write callback: handed to the kernel). A batch
// still in the kernel's send buffer when the connection dies is lost without anyone knowing; and
// one that fails after being partly sent is retried whole, so the server may see its first
// messages twice. This is the same guarantee rsyslog and syslog-ng give each other over TCP.

import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { hostname } from 'node:os';
import tls from 'node:tls';
import { formatAddress } from '../../lib/address.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { SyslogSinkConfig } from '../config.js';
import { FACILITY_NAMES } from '../parsers/syslog.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import { encodeEvent } from './encode.js';

export interface SyslogDriverOptions {
  /** Supplies TIMESTAMP for events without an RFC 3339 `timestamp` or `time`. */
  clock?: Clock;
  /** HOSTNAME of every message (os.hostname() by default). */
  hostname?: string;
}

export function createSyslogDriver(cfg: SyslogSinkConfig, opts: SyslogDriverOptions = {}): SinkDriver {
  return new SyslogDriver(cfg, opts);
}

// Severity by level name as loggers write them (pino, winston, log4j, Go's slog, syslog's own).
const SEVERITY_BY_NAME = new Map<string, number>([
  ['emerg', 0],
  ['emergency', 0],
  ['panic', 0],
  ['alert', 1],
  ['crit', 2],
  ['critical', 2],
  ['fatal', 2],
  ['err', 3],
  ['error', 3],
  ['warn', 4],
  ['warning', 4],
  ['notice', 5],
  ['info', 6],
  ['information', 6],
  ['informational', 6],
  ['debug', 7],
  ['trace', 7],
]);
// pino's numeric levels (trace 10 ... fatal 60).
const SEVERITY_BY_PINO = new Map<number, number>([
  [10, 7],
  [20, 7],
  [30, 6],
  [40, 4],
  [50, 3],
  [60, 2],
]);
const INFO = 6;

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;
const HEADER_OK = /^[\x21-\x7e]+$/;
const TEMPLATE = /^\{\{\s*([^{}\s]+)\s*\}\}$/;

class SyslogDriver implements SinkDriver {
  readonly #cfg: SyslogSinkConfig;
  readonly #clock: Clock;
  readonly #host: string;
  readonly #port: number;
  readonly #facility: number;
  /** " HOSTNAME " with its spaces, built once. */
  readonly #hostPart: string;
  /** APP-NAME when fixed; undefined when taken from #appField. */
  readonly #app: string | undefined;
  readonly #appField: string | undefined;
  readonly #severityField: string;
  readonly #messageField: string | undefined;
  #socket: net.Socket | undefined;
  #connecting: Promise<net.Socket> | undefined;
  #closed = false;

  constructor(cfg: SyslogSinkConfig, opts: SyslogDriverOptions) {
    this.#cfg = cfg;
    this.#clock = opts.clock ?? systemClock;
    this.#host = cfg.address.host === '' ? '127.0.0.1' : cfg.address.host;
    this.#port = cfg.address.port;
    this.#facility = FACILITY_NAMES.indexOf(cfg.facility);
    this.#hostPart = ` ${headerField(opts.hostname ?? hostname(), 255)} `;
    const t = TEMPLATE.exec(cfg.appName);
    this.#appField = t ? t[1] : undefined;
    this.#app = t ? undefined : headerField(cfg.appName, 48);
    this.#severityField = cfg.severityField;
    this.#messageField = cfg.messageField;
  }

  async send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    if (events.length === 0) return { kind: 'ok' };
    if (this.#closed) return { kind: 'failed', retry: true, reason: 'syslog sink is closed' };
    const buf = this.#encode(events);
    let sock: net.Socket;
    try {
      sock = await this.#connection(signal);
    } catch (err) {
      return {
        kind: 'failed',
        retry: true,
        reason: `syslog sink: cannot connect to ${this.#where()}: ${(err as Error).message}`,
      };
    }
    return this.#write(sock, buf, signal);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const sock = this.#socket;
    this.#socket = undefined;
    if (!sock || sock.destroyed) return;
    // end() lets what was written go out before the FIN; 'close' also covers a socket that errors.
    await new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.end(() => sock.destroy());
    });
  }

  /** One buffer of `LEN SP SYSLOG-MSG` frames for the batch. */
  #encode(events: LogEvent[]): Buffer {
    const nowStamp = new Date(this.#clock.now()).toISOString();
    const fac8 = this.#facility * 8;
    const frames = new Array<string>(events.length);
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      const app = this.#app ?? headerField(textOf(ev[this.#appField!]), 48);
      const msg = this.#messageField === undefined ? encodeEvent(ev) : textOf(ev[this.#messageField]);
      const line = `<${fac8 + severityOf(ev[this.#severityField])}>1 ${stampOf(ev, nowStamp)}${this.#hostPart}${app} - - - ${msg}`;
      frames[i] = `${Buffer.byteLength(line)} ${line}`;
    }
    return Buffer.from(frames.join(''));
  }

  #write(sock: net.Socket, buf: Buffer, signal: AbortSignal): Promise<SendOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (outcome: SendOutcome) => {
        if (settled) return;
        settled = true;
        sock.off('close', onClose);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const fail = (reason: string) => {
        // Part of the batch may be on the wire: the stream is no longer framed, so start anew.
        this.#drop(sock);
        finish({ kind: 'failed', retry: true, reason: `syslog sink: ${this.#where()}: ${reason}` });
      };
      const onClose = () => fail('connection closed before the batch was written');
      const onAbort = () => fail('timed out writing the batch');
      sock.once('close', onClose);
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) return onAbort();
      sock.write(buf, (err?: Error | null) => (err ? fail(err.message) : finish({ kind: 'ok' })));
    });
  }

  /** The live connection, or a new one. */
  #connection(signal: AbortSignal): Promise<net.Socket> {
    const s = this.#socket;
    // A peer that has sent its FIN will reset what we write next: reconnect instead.
    if (s && !s.destroyed && !s.readableEnded && s.writable) return Promise.resolve(s);
    if (s) this.#drop(s);
    this.#connecting ??= this.#connect(signal).finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(signal: AbortSignal): Promise<net.Socket> {
    if (signal.aborted) throw new Error('aborted');
    const t = this.#cfg.tls;
    let sock: net.Socket;
    let ready: string;
    if (t) {
      // Read on every connect, so renewed certificates are picked up without a restart.
      const [ca, cert, key] = await Promise.all([
        t.caFile === undefined ? undefined : readFile(t.caFile),
        t.certFile === undefined ? undefined : readFile(t.certFile),
        t.keyFile === undefined ? undefined : readFile(t.keyFile),
      ]);
      const servername = t.serverName ?? (net.isIP(this.#host) ? undefined : this.#host);
      sock = tls.connect({ host: this.#host, port: this.#port, ca, cert, key, servername });
      ready = 'secureConnect';
    } else {
      sock = net.connect({ host: this.#host, port: this.#port });
      ready = 'connect';
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        sock.off(ready, onReady);
        sock.off('error', done);
        signal.removeEventListener('abort', onAbort);
        if (err) {
          sock.destroy();
          reject(err);
        } else resolve();
      };
      const onReady = () => done();
      const onAbort = () => done(new Error('timed out connecting'));
      sock.once(ready, onReady);
      sock.once('error', done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 30_000);
    sock.on('error', () => this.#drop(sock));
    sock.on('end', () => this.#drop(sock));
    sock.on('close', () => this.#drop(sock));
    // Servers send nothing, but reading is how a FIN (a restarting server) is noticed at all.
    sock.resume();
    if (this.#closed) {
      sock.destroy();
      throw new Error('syslog sink is closed');
    }
    this.#socket = sock;
    return sock;
  }

  #drop(sock: net.Socket): void {
    if (this.#socket === sock) this.#socket = undefined;
    if (!sock.destroyed) sock.destroy();
  }

  #where(): string {
    return `${this.#cfg.tls ? 'tls' : 'tcp'} ${formatAddress({ host: this.#host, port: this.#port })}`;
  }
}

function severityOf(v: unknown): number {
  if (typeof v === 'string') {
    const s = SEVERITY_BY_NAME.get(v.toLowerCase());
    if (s !== undefined) return s;
    if (v.length === 1 && v >= '0' && v <= '7') return v.charCodeAt(0) - 0x30;
    return INFO;
  }
  if (typeof v === 'number' && Number.isInteger(v)) {
    if (v >= 0 && v <= 7) return v;
    return SEVERITY_BY_PINO.get(v) ?? INFO;
  }
  return INFO;
}

/** The event's own time when it is RFC 3339 (fraction cut to the 6 digits RFC 5424 allows), else now. */
function stampOf(ev: LogEvent, now: string): string {
  let v = ev.timestamp;
  if (typeof v !== 'string') v = ev.time;
  if (typeof v !== 'string') return now;
  const m = RFC3339.exec(v);
  if (!m) return now;
  const frac = m[3] === undefined ? '' : `.${m[3].slice(0, 6)}`;
  return `${m[1]}T${m[2]}${frac}${m[4] === 'z' ? 'Z' : m[4]}`;
}

function textOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? encodeEvent(v) : String(v);
}

/** A header field as RFC 5424 allows it: printable ASCII, at most max characters, "-" when empty. */
function headerField(v: string, max: number): string {
  if (v.length === 0) return '-';
  if (v.length <= max && HEADER_OK.test(v)) return v;
  let out = '';
  for (let i = 0; i < v.length && out.length < max; i++) {
    const c = v.charCodeAt(i);
    out += c > 0x20 && c < 0x7f ? v[i] : '_';
  }
  return out;
}
