// One HTTP GET or TCP connect against a local port, as health checks and probes make them: never
// rejects or throws, ends at its socket timeout or when its signal aborts, and returns what
// happened as data. Callers word the outcome for their readers (kubelet-style, or plain).

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';

export type CheckOutcome =
  | { kind: 'status'; status: number }
  | { kind: 'connected' }
  | { kind: 'timeout' }
  | { kind: 'aborted' }
  | { kind: 'error'; code: string; message: string };

export interface HttpCheck {
  host: string;
  port: number;
  path: string;
  https?: boolean;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Opens the connection itself (an upstream's TLS, with its identity checks); default a plain or https one. */
  connect?: (() => Socket) | undefined;
}

export function httpCheck(c: HttpCheck): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof httpRequest>;
    try {
      req = (c.https ? httpsRequest : httpRequest)(
        {
          host: c.host,
          port: c.port,
          path: c.path,
          method: 'GET',
          // No agent at all when the caller connects: an agent (even agent: false's) would open its own.
          agent: c.connect ? undefined : false,
          timeout: c.timeoutMs,
          rejectUnauthorized: false, // a probe of a local port checks liveness, not identity
          headers: c.headers,
          ...(c.connect ? { createConnection: c.connect } : {}),
          ...(c.signal ? { signal: c.signal } : {}),
        },
        (res) => {
          res.destroy(); // the status is the answer; a streaming body must not hold the socket
          resolve({ kind: 'status', status: res.statusCode ?? 0 });
        },
      );
    } catch (err) {
      resolve({
        kind: 'error',
        code: (err as NodeJS.ErrnoException).code ?? 'EINVAL',
        message: (err as Error).message,
      });
      return;
    }
    req.on('timeout', () => {
      req.destroy();
      resolve({ kind: 'timeout' });
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(failure(err)));
    req.end();
  });
}

export function tcpCheck(c: {
  host: string;
  port: number;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    const signal = c.signal;
    if (signal?.aborted) {
      resolve({ kind: 'aborted' });
      return;
    }
    // The signal is not handed to connect(): there its abort listener stays on the signal after
    // the socket closes, and a prober's signal lives as long as the process, so every check would
    // leave a listener (and its destroyed socket) behind. This one is removed when the check ends.
    const socket = connect({ host: c.host, port: c.port });
    const end = (outcome: CheckOutcome): void => {
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(outcome);
    };
    const onAbort = (): void => end({ kind: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(c.timeoutMs, () => end({ kind: 'timeout' }));
    socket.once('connect', () => end({ kind: 'connected' }));
    socket.once('error', (err: NodeJS.ErrnoException) => end(failure(err)));
  });
}

function failure(err: NodeJS.ErrnoException): CheckOutcome {
  if (err.name === 'AbortError') return { kind: 'aborted' };
  return { kind: 'error', code: err.code ?? 'error', message: err.message };
}
