// One health check of the app: an HTTP GET (2xx/3xx passes, as a kubelet httpGet probe) or a TCP
// connect, with a reason a person can act on. Never rejects; stops at once when its signal aborts
// (the module is stopping).

import { type CheckOutcome, httpCheck, tcpCheck } from '../lib/net-check.js';

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

export const probeApp: Probe = async (t, signal) => {
  const outcome =
    t.protocol === 'tcp'
      ? await tcpCheck({ host: t.host, port: t.port, timeoutMs: t.timeoutMs, signal })
      : await httpCheck({
          host: t.host,
          port: t.port,
          path: t.path,
          timeoutMs: t.timeoutMs,
          signal,
          headers: { 'user-agent': 'pillion-health/1', accept: '*/*' },
        });
  return describe(outcome, t);
};

function describe(o: CheckOutcome, t: ProbeTarget): ProbeResult {
  const what = t.protocol === 'tcp' ? `connect to ${t.host}:${t.port}` : `GET ${t.path}`;
  switch (o.kind) {
    case 'connected':
      return { ok: true };
    case 'status':
      return o.status >= 200 && o.status < 400
        ? { ok: true }
        : { ok: false, reason: `GET ${t.path} answered ${o.status}` };
    case 'timeout':
      return { ok: false, reason: `${what} timed out after ${t.timeoutMs}ms` };
    case 'aborted':
      return { ok: false, reason: 'check cancelled' };
    case 'error':
      if (o.code === 'ECONNREFUSED')
        return { ok: false, reason: `connection refused at ${t.host}:${t.port}` };
      return { ok: false, reason: `${o.code} at ${t.host}:${t.port}: ${o.message}` };
  }
}
