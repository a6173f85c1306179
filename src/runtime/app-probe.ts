// One health check of the app: an HTTP GET (2xx/3xx passes, as a kubelet httpGet probe) or a TCP
// connect. Resolves with the outcome and a reason a person can act on; never rejects, never
// throws, and stops at once when its signal aborts (the module is stopping). Timeouts are socket
// timeouts, so no timer outlives the check.

import { request } from 'node:http';
import { connect } from 'node:net';

export interface ProbeTarget {
  host: string;
  port: number;
  protocol: 'http' | 'tcp';
  path: string;
  timeoutMs: number;
}

export interface ProbeResult {
  ok: boolean;
  reason?: string;
}

export type Probe = (target: ProbeTarget, signal?: AbortSignal) => Promise<ProbeResult>;

export const probeApp: Probe = (t, signal) =>
  t.protocol === 'tcp' ? probeTcp(t, signal) : probeHttp(t, signal);

function probeHttp(t: ProbeTarget, signal: AbortSignal | undefined): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof request>;
    try {
      req = request(
        {
          host: t.host,
          port: t.port,
          path: t.path,
          method: 'GET',
          agent: false,
          timeout: t.timeoutMs,
          ...(signal ? { signal } : {}),
          headers: { 'user-agent': 'pillion-health/1', accept: '*/*' },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.destroy(); // the status is the answer; a streaming body must not hold the socket
          resolve(
            status >= 200 && status < 400
              ? { ok: true }
              : { ok: false, reason: `GET ${t.path} answered ${status}` },
          );
        },
      );
    } catch (err) {
      resolve({ ok: false, reason: `GET ${t.path} cannot be sent: ${(err as Error).message}` });
      return;
    }
    req.on('timeout', () => {
      req.destroy();
      resolve({ ok: false, reason: `GET ${t.path} timed out after ${t.timeoutMs}ms` });
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ ok: false, reason: err.name === 'AbortError' ? 'check cancelled' : connectReason(err, t) }),
    );
    req.end();
  });
}

function probeTcp(t: ProbeTarget, signal: AbortSignal | undefined): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: t.host, port: t.port, ...(signal ? { signal } : {}) });
    socket.setTimeout(t.timeoutMs, () => {
      socket.destroy();
      resolve({ ok: false, reason: `connect to ${t.host}:${t.port} timed out after ${t.timeoutMs}ms` });
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true });
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      resolve({ ok: false, reason: err.name === 'AbortError' ? 'check cancelled' : connectReason(err, t) }),
    );
  });
}

function connectReason(err: NodeJS.ErrnoException, t: ProbeTarget): string {
  if (err.code === 'ECONNREFUSED') return `connection refused at ${t.host}:${t.port}`;
  return `${err.code ?? 'error'} at ${t.host}:${t.port}: ${err.message}`;
}
