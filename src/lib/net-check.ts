// One HTTP GET or TCP connect against a local port, as health checks and probes make them: never
// rejects or throws, ends at its socket timeout or when its signal aborts, and returns what
// happened as data. Callers word the outcome for their readers (kubelet-style, or plain).

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';

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
          agent: false,
          timeout: c.timeoutMs,
          rejectUnauthorized: false, // a probe of a local port checks liveness, not identity
          headers: c.headers,
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
    if (c.signal?.aborted) return resolve({ kind: 'aborted' });
    // The signal is watched here, not handed to net.connect: Node 20 leaves that listener on the
    // signal after the socket closes, one more per check on a signal that lives as long as the module.
    const socket = connect({ host: c.host, port: c.port });
    const onAbort = () => {
      socket.destroy();
      done({ kind: 'aborted' });
    };
    const done = (outcome: CheckOutcome) => {
      c.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    c.signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(c.timeoutMs, () => {
      socket.destroy();
      done({ kind: 'timeout' });
    });
    socket.once('connect', () => {
      socket.destroy();
      done({ kind: 'connected' });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => done(failure(err)));
  });
}

function failure(err: NodeJS.ErrnoException): CheckOutcome {
  if (err.name === 'AbortError') return { kind: 'aborted' };
  return { kind: 'error', code: err.code ?? 'error', message: err.message };
}
