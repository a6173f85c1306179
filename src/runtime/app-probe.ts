// One health check of the app: an HTTP GET (2xx/3xx passes, as a kubelet httpGet probe) or a TCP
// connect. Resolves with the outcome and a reason a person can act on; never rejects.

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

export type Probe = (target: ProbeTarget) => Promise<ProbeResult>;

export const probeApp: Probe = (t) => (t.protocol === 'tcp' ? probeTcp(t) : probeHttp(t));

function probeHttp(t: ProbeTarget): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: t.host,
        port: t.port,
        path: t.path,
        method: 'GET',
        agent: false,
        headers: { 'user-agent': 'pillion-health/1', accept: '*/*' },
      },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve(
          status >= 200 && status < 400
            ? { ok: true }
            : { ok: false, reason: `GET ${t.path} answered ${status}` },
        );
      },
    );
    req.setTimeout(t.timeoutMs, () => {
      req.destroy();
      resolve({ ok: false, reason: `GET ${t.path} timed out after ${t.timeoutMs}ms` });
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, reason: connectReason(err, t) }));
    req.end();
  });
}

function probeTcp(t: ProbeTarget): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: t.host, port: t.port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, reason: `connect to ${t.host}:${t.port} timed out after ${t.timeoutMs}ms` });
    }, t.timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: true });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: connectReason(err, t) });
    });
  });
}

function connectReason(err: NodeJS.ErrnoException, t: ProbeTarget): string {
  if (err.code === 'ECONNREFUSED') return `connection refused at ${t.host}:${t.port}`;
  return `${err.code ?? 'error'} at ${t.host}:${t.port}: ${err.message}`;
}
