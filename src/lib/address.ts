// host:port addresses as listeners and targets take them. ":8080" means every interface, as in
// Go and Prometheus; "[::1]:8080" is IPv6; a host name is allowed and resolved when used.

import { isIP, type Server } from 'node:net';
import type { ParseResult } from './duration.js';
import { type ErrorCode, PillionError } from './errors.js';

export interface Address {
  /** IP literal or host name; '' means every interface. */
  readonly host: string;
  readonly port: number;
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseAddress(text: string): ParseResult<Address> {
  const input = text.trim();
  let host: string;
  let portText: string;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0 || input[close + 1] !== ':') {
      return { ok: false, reason: `"${input}": IPv6 addresses are written "[::1]:8080"` };
    }
    host = input.slice(1, close);
    portText = input.slice(close + 2);
    if (isIP(host) !== 6) return { ok: false, reason: `"${host}" is not an IPv6 address` };
  } else {
    const colon = input.lastIndexOf(':');
    if (colon < 0) return { ok: false, reason: `"${input}" has no port (write host:port or :port)` };
    host = input.slice(0, colon);
    portText = input.slice(colon + 1);
    if (host.includes(':'))
      return { ok: false, reason: `"${input}": put IPv6 addresses in brackets, "[${host}]:${portText}"` };
    if (host !== '' && isIP(host) === 0 && !HOSTNAME.test(host)) {
      return { ok: false, reason: `"${host}" is neither an IP address nor a host name` };
    }
    if (/^\d+(\.\d+){3}$/.test(host) && isIP(host) === 0) {
      return { ok: false, reason: `"${host}" is not a valid IPv4 address` };
    }
  }
  if (!/^\d{1,5}$/.test(portText)) return { ok: false, reason: `port "${portText}" is not a number` };
  const port = Number(portText);
  if (port > 65535) return { ok: false, reason: `port ${port} is out of range (0-65535)` };
  return { ok: true, value: { host, port } };
}

export function formatAddress(addr: Address): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** True for 127.0.0.0/8, ::1 and localhost: addresses no other host can reach. */
/** A peer address as people write it: "::ffff:10.0.0.1" (IPv4 on a dual-stack socket) is 10.0.0.1. */
export function unmapIPv4(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return mapped ? mapped[1]!.startsWith('127.') : false;
}

/**
 * Starts `server` listening on `listen`. A failure (the port taken, no permission) rejects with a
 * PillionError of `code` saying who could not listen where; once listening, the error listener
 * is gone, so the caller adds its own for what comes later.
 */
export function listenOn(server: Server, listen: Address, code: ErrorCode, who: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        new PillionError(
          code,
          `${who} cannot listen on ${formatAddress(listen)}: ${err.code ?? err.message}`,
          {
            cause: err,
          },
        ),
      );
    server.once('error', onError);
    server.listen({ port: listen.port, ...(listen.host ? { host: listen.host } : {}) }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
