// Probe and lifecycle-hook actions as the kubelet runs them: exec (exit 0 passes; run inside the
// container's mount namespace when it has one), httpGet (200-399 passes; HTTPS without
// certificate checks; User-Agent kube-probe), tcpSocket (the port accepts a connection). Ports
// may be named after the container's `ports`. A failure says why in the kubelet's words
// (`dial tcp 127.0.0.1:8080: connect: connection refused`), so status and describe can show it.

import { spawn } from 'node:child_process';
import type { Clock } from '../lib/clock.js';
import { type CheckOutcome, httpCheck, tcpCheck } from '../lib/net-check.js';
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

export interface NamedPort {
  name?: string | undefined;
  containerPort: number;
}

export interface ActionContext {
  env: Record<string, string>;
  cwd: string | undefined;
  /** Pid of the container's process when it has a private mount namespace to enter. */
  nsPid: number | undefined;
  timeoutMs: number;
  clock: Clock;
  /** The container's declared ports, which a named port (`port: http`) is resolved against. */
  ports: readonly NamedPort[];
  /** Ends the action at once (an exec's whole process group is killed) when the run it belongs to ends. */
  signal?: AbortSignal | undefined;
  /** Holds the pid of an exec action while it runs, so whoever ends the pod can end it too. */
  procs?: Set<number> | undefined;
}

export interface ActionResult {
  ok: boolean;
  message?: string;
}

export function runAction(a: ActionTarget, ctx: ActionContext): Promise<ActionResult> {
  if (ctx.signal?.aborted) return Promise.resolve({ ok: false, message: 'the container has ended' });
  if (a.exec) return runExec(a.exec.command, ctx);
  if (a.httpGet) return runHttp(a.httpGet, ctx);
  if (a.tcpSocket) return runTcp(a.tcpSocket, ctx);
  return Promise.resolve({ ok: false, message: 'no action' });
}

/** A port number, or the number of the container port of that name; a string saying why not. */
export function resolvePort(port: number | string, ports: readonly NamedPort[]): number | string {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const found = ports.find((p) => p.name === port);
  return found ? found.containerPort : `no container port named "${port}"`;
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
      detached: true, // its own group: a timeout or the container's end kills all it started
    });
    const pid = child.pid;
    if (pid) ctx.procs?.add(pid);
    let settled = false;
    const settle = (r: ActionResult) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      ctx.signal?.removeEventListener('abort', onAbort);
      killGroup(pid, 'SIGKILL'); // whatever the command left behind
      if (pid) ctx.procs?.delete(pid);
      resolve(r);
    };
    const collect = (b: Buffer) => {
      if (output.length < 1024) output += b.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const shown = command.join(' ');
    const timer = ctx.clock.setTimeout(
      () =>
        settle({ ok: false, message: `command "${shown}" timed out after ${formatTimeout(ctx.timeoutMs)}` }),
      ctx.timeoutMs,
    );
    const onAbort = () => settle({ ok: false, message: 'the container has ended' });
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => settle({ ok: false, message: err.message }));
    child.on('exit', (code, signal) => {
      killGroup(pid, 'SIGKILL'); // what it left behind must not hold its output open
      const result = (): ActionResult => {
        if (code === 0) return { ok: true };
        const out = output.trim().slice(0, 200);
        return {
          ok: false,
          message: out || `command "${shown}" exited with ${code !== null ? `code ${code}` : signal}`,
        };
      };
      // Its output can arrive after 'exit': the message is what it printed, so wait for the
      // pipes to close (a process that left its group could hold them: not for long).
      const drained = setTimeout(() => settle(result()), 1000);
      drained.unref();
      child.once('close', () => {
        clearTimeout(drained);
        settle(result());
      });
    });
  });
}

async function runHttp(h: NonNullable<ActionTarget['httpGet']>, ctx: ActionContext): Promise<ActionResult> {
  const port = resolvePort(h.port, ctx.ports);
  if (typeof port === 'string') return { ok: false, message: port };
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.33 (pillion)', accept: '*/*' };
  for (const x of h.httpHeaders) headers[x.name.toLowerCase()] = x.value;
  const host = h.host ?? POD_IP;
  const path = h.path.startsWith('/') ? h.path : `/${h.path}`;
  const url = `${h.scheme.toLowerCase()}://${host}:${port}${path}`;
  const o = await httpCheck({
    host,
    port,
    path,
    https: h.scheme === 'HTTPS',
    headers,
    timeoutMs: ctx.timeoutMs,
    signal: ctx.signal,
  });
  if (o.kind === 'status') {
    return o.status >= 200 && o.status < 400
      ? { ok: true }
      : { ok: false, message: `HTTP probe failed with statuscode: ${o.status}` };
  }
  if (o.kind === 'timeout')
    return {
      ok: false,
      message: `Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
    };
  return { ok: false, message: `Get "${url}": ${dialError(o, host, port)}` };
}

async function runTcp(t: NonNullable<ActionTarget['tcpSocket']>, ctx: ActionContext): Promise<ActionResult> {
  const port = resolvePort(t.port, ctx.ports);
  if (typeof port === 'string') return { ok: false, message: port };
  const host = t.host ?? POD_IP;
  const o = await tcpCheck({ host, port, timeoutMs: ctx.timeoutMs, signal: ctx.signal });
  if (o.kind === 'connected') return { ok: true };
  return { ok: false, message: dialError(o, host, port) };
}

// Go's net errors, which is what people search for when a probe fails.
function dialError(o: CheckOutcome, host: string, port: number): string {
  const dial = `dial tcp ${host}:${port}`;
  if (o.kind === 'timeout') return `${dial}: i/o timeout`;
  if (o.kind === 'aborted') return 'the container has ended';
  if (o.kind !== 'error') return o.kind;
  switch (o.code) {
    case 'ECONNREFUSED':
      return `${dial}: connect: connection refused`;
    case 'EHOSTUNREACH':
      return `${dial}: connect: no route to host`;
    case 'ENETUNREACH':
      return `${dial}: connect: network is unreachable`;
    case 'ECONNRESET':
      return `read tcp ${host}:${port}: read: connection reset by peer`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `dial tcp: lookup ${host}: no such host`;
    default:
      return `${o.code}: ${o.message}`;
  }
}

function formatTimeout(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
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
