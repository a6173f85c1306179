// TCP mode: each client connection (TLS-terminated or not) is joined to a new connection to the
// upstream and bytes are moved both ways with backpressure. The stunnel/ghostunnel use case:
// TLS in front of a legacy app that does not speak HTTP.

import net from 'node:net';
import type { Logger } from 'pino';
import type { ListenerStats } from './stats.js';
import { connectEndpoint } from './upstream/endpoints.js';
import type { Upstream } from './upstream/upstream.js';

export interface TcpContext {
  listener: string;
  upstream: Upstream;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  stats: ListenerStats;
  logger: Logger;
  sockets: Set<net.Socket>;
}

export function forwardTcp(client: net.Socket, ctx: TcpContext): void {
  const ep = ctx.upstream.pick('', undefined);
  ctx.sockets.add(client);
  ctx.stats.connections.value++;
  client.on('close', () => {
    ctx.sockets.delete(client);
    ctx.stats.connections.value--;
  });
  client.on('error', () => client.destroy());
  if (!ep) {
    ctx.stats.upstreamError(ctx.upstream.name, 'no_endpoint');
    client.destroy();
    return;
  }
  client.pause();
  const t = ctx.upstream.tls;
  const up = connectEndpoint(ep, t);
  client.setNoDelay(true);
  let connected = false;
  const timer = setTimeout(() => {
    ctx.stats.upstreamError(ctx.upstream.name, 'connect_timeout');
    up.destroy();
    client.destroy();
  }, ctx.connectTimeoutMs);
  timer.unref();
  up.once(t ? 'secureConnect' : 'connect', () => {
    connected = true;
    clearTimeout(timer);
    client.pipe(up);
    up.pipe(client);
    client.resume();
  });
  up.on('error', (err) => {
    if (!connected) {
      clearTimeout(timer);
      ctx.stats.upstreamError(ctx.upstream.name, 'connect_refused');
      ctx.logger.debug(
        { listener: ctx.listener, upstream: ep.key, err: err.message },
        'tcp upstream connect failed',
      );
    }
    client.destroy();
  });
  // end, not destroy: bytes still queued for the client must reach it.
  up.on('close', () => client.end());
  client.on('close', () => up.destroy());
  client.on('data', (b: Buffer) => {
    ctx.stats.bytesIn.value += b.length;
  });
  up.on('data', (b: Buffer) => {
    ctx.stats.bytesOut.value += b.length;
  });
  if (ctx.idleTimeoutMs > 0) {
    // Either direction moving keeps the pair open.
    client.setTimeout(ctx.idleTimeoutMs, () => {
      client.destroy();
    });
    up.on('data', () => client.setTimeout(ctx.idleTimeoutMs));
  }
}
