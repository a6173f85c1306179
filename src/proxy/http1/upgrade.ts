// Which protocols of a request's Upgrade header (RFC 9110 §7.8) may be tunnelled: those the route
// allows, never h2c. An h2c tunnel would let a client speak HTTP/2 to the app past every route,
// as its requests inside the tunnel are never seen by the proxy; with h2c removed, curl's
// `--http2` on cleartext gets its answer over HTTP/1.1, as through nginx.

import type { ListenerStats } from '../stats.js';

/**
 * The Upgrade value to forward: the listed protocols the route allows, in order, or '' when none
 * is left (the request then goes on as plain HTTP/1.1). Each protocol removed is counted.
 */
export function allowedUpgrade(value: string, allowed: Set<string>, stats: ListenerStats): string {
  let out = '';
  for (const item of value.split(',')) {
    const protocol = item.trim();
    if (protocol === '') continue;
    const name = protocolName(protocol);
    if (name !== 'h2c' && allowed.has(name)) out = out === '' ? protocol : `${out}, ${protocol}`;
    else stats.refused(name === 'h2c' ? 'upgrade_h2c' : 'upgrade_not_allowed');
  }
  return out;
}

/** Whether every protocol a 101 response switched to is one the forwarded request offered. */
export function upgradeOffered(offered: string, chosen: string): boolean {
  let any = false;
  for (const c of chosen.split(',')) {
    const name = protocolName(c.trim());
    if (name === '') continue;
    any = true;
    let found = false;
    for (const o of offered.split(',')) if (protocolName(o.trim()) === name) found = true;
    if (!found) return false;
  }
  return any;
}

/** "websocket" of "WebSocket", "h2c" of "h2c/1": the protocol name, lower-case, without a version. */
function protocolName(protocol: string): string {
  const slash = protocol.indexOf('/');
  return (slash === -1 ? protocol : protocol.slice(0, slash)).toLowerCase();
}
