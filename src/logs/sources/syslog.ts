// The syslog source: RFC 5424/3164 messages over UDP (one per datagram) or TCP (octet-counted or
// newline-framed, detected per message), parsed and handed on in chunks of what one tick delivered.

import { isUtf8 } from 'node:buffer';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { type Address, formatAddress, unmapIPv4 } from '../../lib/address.js';
import { PillionError } from '../../lib/errors.js';
import { utf8Boundary } from '../../lib/utf8.js';
import type { SyslogSourceConfig } from '../config.js';
import { LossLog } from '../loss.js';
import { parseSyslog } from '../parsers/syslog.js';
import type { LogEvent, LogSource, SourceContext } from '../types.js';

/** A chunk is handed on once it holds this many events, even within one tick. */
const MAX_CHUNK_EVENTS = 4096;
/** TCP connections open at once; Node closes any beyond this as soon as it is accepted. */
const MAX_CONNECTIONS = 1024;
/** An octet count has at most this many digits (up to 9,999,999,999 bytes, all but maxMessageBytes skipped). */
const MAX_COUNT_DIGITS = 10;
/**
 * A TCP connection that sends nothing for this long is closed, so peers that vanished without a
 * FIN (a crashed host, a dropped NAT entry) do not hold one of the MAX_CONNECTIONS for ever.
 */
export const TCP_IDLE_TIMEOUT_MS = 5 * 60_000;

export interface SyslogSource extends LogSource {
  /** The address bound (the real port when the config said 0); valid after start(). */
  address(): Address;
}

export interface SyslogSourceOptions {
  /** Closes a TCP connection idle this long (TCP_IDLE_TIMEOUT_MS by default); 0 never does. */
  tcpIdleTimeoutMs?: number;
}

export function createSyslogSource(
  cfg: SyslogSourceConfig,
  ctx: SourceContext,
  opts: SyslogSourceOptions = {},
): SyslogSource {
  return new SyslogSourceImpl(cfg, ctx, opts.tcpIdleTimeoutMs ?? TCP_IDLE_TIMEOUT_MS);
}

class SyslogSourceImpl implements SyslogSource {
  readonly #cfg: SyslogSourceConfig;
  readonly #ctx: SourceContext;
  readonly #idleMs: number;
  #udp: dgram.Socket | undefined;
  #server: net.Server | undefined;
  readonly #conns = new Set<Connection>();
  #bound: Address | undefined;
  #pending: LogEvent[] = [];
  #pendingBytes = 0;
  #flushScheduled: NodeJS.Immediate | undefined;
  #paused = false;
  #stopped = false;
  readonly #loss: LossLog;
  readonly #flush = () => {
    this.#flushScheduled = undefined;
    this.flush();
  };

  constructor(cfg: SyslogSourceConfig, ctx: SourceContext, idleMs: number) {
    this.#cfg = cfg;
    this.#ctx = ctx;
    this.#idleMs = idleMs;
    this.#loss = new LossLog({
      source: ctx.name,
      series: (reason) => ctx.stats.lostBytes(reason),
      logger: ctx.logger,
      clock: ctx.clock,
    });
  }

  address(): Address {
    if (!this.#bound) throw new Error('syslog source not started');
    return this.#bound;
  }

  async start(): Promise<void> {
    const { listen, protocol } = this.#cfg;
    try {
      if (protocol === 'udp') await this.#startUdp(listen);
      else await this.#startTcp(listen);
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_LOGS_LISTEN',
        `syslog source "${this.#ctx.name}" cannot listen on ${protocol} ${formatAddress(listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const closing: Promise<void>[] = [];
    if (this.#udp) {
      const udp = this.#udp;
      closing.push(new Promise((resolve) => udp.close(() => resolve())));
    }
    if (this.#server) {
      const server = this.#server;
      closing.push(new Promise((resolve) => server.close(() => resolve())));
    }
    // What a connection holds (a last line without its newline) is kept, as a closed connection would.
    for (const c of this.#conns) {
      c.framer.end();
      c.socket.destroy();
    }
    this.#conns.clear();
    if (this.#flushScheduled) clearImmediate(this.#flushScheduled);
    this.#flushScheduled = undefined;
    this.flush();
    await Promise.all(closing);
  }

  /** Parses one message and queues its event for the next chunk. */
  message(
    text: string,
    bytes: number,
    truncated: boolean,
    invalidUtf8: boolean,
    peer: string | undefined,
  ): void {
    const ev = parseSyslog(text, this.#ctx.clock.now());
    if (ev.parse_error !== undefined) this.#ctx.stats.parseErrors.value++;
    if (truncated) {
      ev.truncated = true;
      this.#ctx.stats.truncated.value++;
      this.#loss.lost('line_too_long', Math.max(0, bytes - Buffer.byteLength(text)), { peer });
    }
    if (invalidUtf8) ev.invalid_utf8 = true;
    if (peer !== undefined) ev.source_ip = peer;
    this.#queue(ev, bytes);
  }

  /** Queues what could not be framed, raw with the reason. */
  raw(text: string, bytes: number, reason: string, peer: string | undefined): void {
    this.#ctx.stats.parseErrors.value++;
    const ev: LogEvent = { message: text, parse_error: reason };
    if (peer !== undefined) ev.source_ip = peer;
    this.#queue(ev, bytes);
  }

  #queue(ev: LogEvent, bytes: number): void {
    this.#pending.push(ev);
    this.#pendingBytes += bytes;
    if (this.#pending.length >= MAX_CHUNK_EVENTS) this.flush();
    else if (this.#flushScheduled === undefined) this.#flushScheduled = setImmediate(this.#flush);
  }

  /** Hands what is queued to the pipeline as one chunk. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    const bytes = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#ctx.stats.events.value += events.length;
    const room = this.#ctx.emit({ source: this.#ctx.name, events, bytes });
    // UDP cannot push back; it checks hasCapacity() per datagram and drops instead.
    if (!room && this.#server) this.#pauseTcp();
  }

  // --- UDP --------------------------------------------------------------------------------------

  async #startUdp(listen: Address): Promise<void> {
    let host = listen.host;
    let family = net.isIP(host);
    if (host !== '' && family === 0) {
      const r = await lookup(host);
      host = r.address;
      family = r.family;
    }
    // An empty host means every interface: IPv6 with IPv4 mapped, or IPv4 alone where IPv6 is off.
    const attempts: [dgram.SocketType, string][] =
      host === ''
        ? [
            ['udp6', '::'],
            ['udp4', '0.0.0.0'],
          ]
        : [[family === 6 ? 'udp6' : 'udp4', host]];
    let lastErr: unknown;
    for (const [type, addr] of attempts) {
      const sock = dgram.createSocket({ type });
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind(listen.port, addr, () => {
            sock.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        lastErr = err;
        sock.close();
        continue;
      }
      sock.on('error', (err) => this.#ctx.logger.warn({ err }, 'syslog udp socket error'));
      sock.on('message', (buf, rinfo) => this.#datagram(buf, rinfo.address));
      this.#udp = sock;
      this.#bound = { host: listen.host, port: sock.address().port };
      return;
    }
    throw lastErr;
  }

  #datagram(buf: Buffer, from: string): void {
    if (this.#stopped) return;
    this.#ctx.stats.bytes.value += buf.length;
    if (!this.#ctx.hasCapacity()) {
      // UDP has no way to make the sender wait: count what is lost rather than buffer without bound.
      this.#ctx.stats.dropped.value++;
      this.#loss.lost('buffer_full', buf.length, { peer: from });
      return;
    }
    const max = this.#cfg.maxMessageBytes;
    const truncated = buf.length > max;
    // Cut as TCP cuts (it keeps no byte past the limit): a sequence the limit split is left out.
    const body = truncated ? buf.subarray(0, utf8Boundary(buf.subarray(0, max), max)) : buf;
    this.message(body.toString('utf8'), buf.length, truncated, !isUtf8(body), unmapIPv4(from));
  }

  // --- TCP --------------------------------------------------------------------------------------

  async #startTcp(listen: Address): Promise<void> {
    const server = net.createServer({ noDelay: true });
    server.maxConnections = MAX_CONNECTIONS;
    server.on('connection', (socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listen.host === '' ? undefined : listen.host, port: listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#ctx.logger.warn({ err }, 'syslog tcp server error'));
    this.#server = server;
    const a = server.address() as net.AddressInfo;
    this.#bound = { host: listen.host, port: a.port };
  }

  #accept(socket: net.Socket): void {
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    const peer = socket.remoteAddress === undefined ? undefined : unmapIPv4(socket.remoteAddress);
    const conn: Connection = { socket, framer: new TcpFramer(this, this.#cfg.maxMessageBytes, peer) };
    this.#conns.add(conn);
    // A paused connection is not idle: its peer may be waiting on us. The timer runs while reading.
    if (this.#paused) socket.pause();
    else socket.setTimeout(this.#idleMs);
    socket.on('data', (data: Buffer) => {
      this.#ctx.stats.bytes.value += data.length;
      if (!conn.framer.push(data)) {
        // A bad octet count leaves no way to find the next frame: keep what was read and hang up.
        this.#ctx.logger.warn({ peer }, 'syslog tcp: bad octet count; closing the connection');
        socket.destroy();
      }
    });
    socket.on('end', () => conn.framer.end());
    socket.on('timeout', () => {
      this.#ctx.logger.debug({ peer }, 'syslog tcp: connection idle; closing it');
      // As when the peer hangs up: what was read (a last line without newline) is kept.
      conn.framer.end();
      socket.destroy();
    });
    socket.on('error', (err) => this.#ctx.logger.debug({ err, peer }, 'syslog tcp connection error'));
    socket.on('close', () => this.#conns.delete(conn));
  }

  #pauseTcp(): void {
    if (this.#paused || this.#stopped) return;
    this.#paused = true;
    for (const c of this.#conns) {
      c.socket.pause();
      c.socket.setTimeout(0);
    }
    this.#ctx.capacity().then(
      () => this.#resumeTcp(),
      () => this.#resumeTcp(),
    );
  }

  #resumeTcp(): void {
    this.#paused = false;
    if (this.#stopped) return;
    for (const c of this.#conns) {
      c.socket.setTimeout(this.#idleMs);
      c.socket.resume();
    }
  }
}

interface Connection {
  socket: net.Socket;
  framer: TcpFramer;
}

// The framer's states.
const State = {
  /** Between messages: the first byte decides the framing. */
  Start: 0,
  /** Reading the digits of an octet count. */
  Count: 1,
  /** Reading (and beyond maxMessageBytes skipping) the bytes of an octet-counted frame. */
  Octets: 2,
  /** Reading up to a newline. */
  Line: 3,
} as const;

/**
 * One connection's framing (RFC 6587): a message starting with a digit is octet-counted
 * (`LEN SP MSG`), any other is newline-terminated. Keeps at most maxMessageBytes of a message.
 */
class TcpFramer {
  readonly #out: SyslogSourceImpl;
  readonly #max: number;
  readonly #peer: string | undefined;
  #state: number = State.Start;
  #digits = '';
  /** Octets still to come in the current frame (kept or skipped). */
  #need = 0;
  /** The frame's declared length, or a line's length so far. */
  #length = 0;
  #parts: Buffer[] = [];
  #kept = 0;

  constructor(out: SyslogSourceImpl, max: number, peer: string | undefined) {
    this.#out = out;
    this.#max = max;
    this.#peer = peer;
  }

  /** Frames what one read delivered; false when the stream cannot be framed any more. */
  push(data: Buffer): boolean {
    const len = data.length;
    let i = 0;
    while (i < len) {
      switch (this.#state) {
        case State.Start: {
          const c = data[i]!;
          // Stray newlines or NULs between frames (some senders end octet-counted frames with one).
          if (c === 0x0a || c === 0x0d || c === 0) {
            i++;
          } else if (c >= 0x30 && c <= 0x39) {
            this.#state = State.Count;
            this.#digits = '';
          } else {
            this.#state = State.Line;
            this.#length = 0;
          }
          break;
        }
        case State.Count: {
          const c = data[i]!;
          if (c >= 0x30 && c <= 0x39 && this.#digits.length < MAX_COUNT_DIGITS) {
            this.#digits += String.fromCharCode(c);
            i++;
          } else if (c === 0x20 && this.#digits.length > 0) {
            i++;
            this.#length = Number(this.#digits);
            this.#need = this.#length;
            this.#kept = 0;
            this.#parts = [];
            this.#state = this.#length === 0 ? State.Start : State.Octets;
          } else {
            const rest = data.subarray(i, Math.min(len, i + this.#max));
            const text = this.#digits + rest.toString('utf8');
            const what = c === 0x20 ? 'a space' : JSON.stringify(String.fromCharCode(c));
            this.#out.raw(
              text,
              this.#digits.length + len - i,
              `bad octet count: expected digits and a space, got ${what} after "${this.#digits}"`,
              this.#peer,
            );
            this.#state = State.Start;
            return false;
          }
          break;
        }
        case State.Octets: {
          const n = Math.min(this.#need, len - i);
          const keep = Math.min(n, this.#max - this.#kept);
          if (keep > 0) {
            this.#parts.push(data.subarray(i, i + keep));
            this.#kept += keep;
          }
          this.#need -= n;
          i += n;
          if (this.#need === 0) {
            this.#emit(this.#digits.length + 1 + this.#length, this.#length > this.#max);
            this.#state = State.Start;
          }
          break;
        }
        case State.Line: {
          const lf = data.indexOf(0x0a, i);
          const stop = lf < 0 ? len : lf;
          const keep = Math.min(stop - i, this.#max - this.#kept);
          if (keep > 0) {
            this.#parts.push(data.subarray(i, i + keep));
            this.#kept += keep;
          }
          this.#length += stop - i;
          i = stop;
          if (lf >= 0) {
            i++;
            this.#emit(this.#length + 1, this.#length > this.#max);
            this.#state = State.Start;
            this.#length = 0;
          }
          break;
        }
      }
    }
    return true;
  }

  /** The connection ended: what it held is kept (a last line without newline is a message). */
  end(): void {
    switch (this.#state) {
      case State.Line:
        if (this.#length > 0) this.#emit(this.#length, this.#length > this.#max);
        break;
      case State.Count:
        this.#out.raw(
          this.#digits,
          this.#digits.length,
          'connection closed inside an octet count',
          this.#peer,
        );
        break;
      case State.Octets: {
        const buf = this.#take(false);
        this.#out.raw(
          buf.toString('utf8'),
          this.#digits.length + 1 + this.#length - this.#need,
          `connection closed after ${this.#length - this.#need} of ${this.#length} octets`,
          this.#peer,
        );
        break;
      }
      case State.Start:
        break;
    }
    this.#state = State.Start;
    this.#parts = [];
    this.#kept = 0;
  }

  #emit(bytes: number, truncated: boolean): void {
    const buf = this.#take(truncated);
    this.#out.message(buf.toString('utf8'), bytes, truncated, !isUtf8(buf), this.#peer);
  }

  #take(truncated: boolean): Buffer {
    const parts = this.#parts;
    let buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#kept);
    // Without the UTF-8 sequence the limit split (it would decode as U+FFFD).
    if (truncated) buf = buf.subarray(0, utf8Boundary(buf, buf.length));
    this.#parts = [];
    this.#kept = 0;
    return buf;
  }
}
