// Probe and lifecycle-hook actions as the kubelet runs them: exec (exit 0 passes; run inside the
// container's mount namespace when it has one), httpGet (200-399 passes; HTTPS without
// certificate checks; User-Agent kube-probe), tcpSocket (the port accepts a connection).

import { spawn } from 'node:child_process';
import { httpCheck, tcpCheck } from '../lib/net-check.js';
import { POD_IP } from './env.js';

export interface ActionTarget {
  exec?: { command: string[] } | undefined;
  httpGet?:
    | {
        path: string;
        port: number | string;
        host?: string | undefined;
        scheme: 'HTTP' | 'HTTPS';
        httpHeaders: { name: string; value: string }[];
      }
    | undefined;
  tcpSocket?: { port: number | string; host?: string | undefined } | undefined;
}

export interface ActionContext {
  env: Record<string, string>;
  cwd: string | undefined;
  /** Pid of the container's process when it has a private mount namespace to enter. */
  nsPid: number | undefined;
  timeoutMs: number;
}

export interface ActionResult {
  ok: boolean;
  message?: string;
}

export function runAction(a: ActionTarget, ctx: ActionContext): Promise<ActionResult> {
  if (a.exec) return runExec(a.exec.command, ctx);
  if (a.httpGet) return runHttp(a.httpGet, ctx.timeoutMs);
  if (a.tcpSocket) return runTcp(a.tcpSocket, ctx.timeoutMs);
  return Promise.resolve({ ok: false, message: 'no action' });
}

function portOf(port: number | string): number | undefined {
  const n = typeof port === 'number' ? port : /^\d+$/.test(port) ? Number(port) : undefined;
  return n !== undefined && n > 0 && n < 65536 ? n : undefined;
}

function runExec(command: string[], ctx: ActionContext): Promise<ActionResult> {
  return new Promise((resolve) => {
    // Inside the container's mount namespace its working directory may exist only there, so the
    // cd happens after entering it (nsenter --wd resolves the path before).
    const [file, ...args] = ctx.nsPid
      ? [
          'nsenter',
          '--target',
          String(ctx.nsPid),
          '--mount',
          '--',
          '/bin/sh',
          '-c',
          'cd "$0" && exec "$@"',
          ctx.cwd ?? '/',
          ...command,
        ]
      : command;
    let output = '';
    const child = spawn(file!, args, {
      env: ctx.env,
      cwd: ctx.nsPid ? undefined : ctx.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const collect = (b: Buffer) => {
      if (output.length < 1024) output += b.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      killGroup(child.pid, 'SIGKILL');
      resolve({ ok: false, message: `command timed out after ${ctx.timeoutMs}ms` });
    }, ctx.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, message: err.message });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      killGroup(child.pid, 'SIGKILL'); // whatever the command left behind
      resolve(
        code === 0
          ? { ok: true }
          : {
              ok: false,
              message: `exit ${code ?? signal}${output ? `: ${output.trim().slice(0, 200)}` : ''}`,
            },
      );
    });
  });
}

async function runHttp(h: NonNullable<ActionTarget['httpGet']>, timeoutMs: number): Promise<ActionResult> {
  const port = portOf(h.port);
  if (port === undefined)
    return { ok: false, message: `port "${h.port}" is not a number (named ports are not supported)` };
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.33 (pillion)', accept: '*/*' };
  for (const x of h.httpHeaders) headers[x.name.toLowerCase()] = x.value;
  const host = h.host ?? POD_IP;
  const path = h.path.startsWith('/') ? h.path : `/${h.path}`;
  const url = `${h.scheme.toLowerCase()}://${host}:${port}${path}`;
  const o = await httpCheck({ host, port, path, https: h.scheme === 'HTTPS', headers, timeoutMs });
  if (o.kind === 'status') {
    return o.status >= 200 && o.status < 400
      ? { ok: true }
      : { ok: false, message: `HTTP probe failed with statuscode: ${o.status}` };
  }
  return {
    ok: false,
    message: `Get "${url}": ${o.kind === 'timeout' ? `timeout after ${timeoutMs}ms` : o.kind === 'error' ? o.code : o.kind}`,
  };
}

async function runTcp(t: NonNullable<ActionTarget['tcpSocket']>, timeoutMs: number): Promise<ActionResult> {
  const port = portOf(t.port);
  if (port === undefined)
    return { ok: false, message: `port "${t.port}" is not a number (named ports are not supported)` };
  const host = t.host ?? POD_IP;
  const o = await tcpCheck({ host, port, timeoutMs });
  if (o.kind === 'connected') return { ok: true };
  return {
    ok: false,
    message: `dial tcp ${host}:${port}: ${o.kind === 'timeout' ? 'i/o timeout' : o.kind === 'error' ? o.code : o.kind}`,
  };
}

/** Signals a whole process group; a group that is gone already is not an error. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}
