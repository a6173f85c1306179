// Helpers shared by the benchmarks in bench/: child processes that die with the script, readiness
// polls, /proc readings (CPU time and memory of a process tree) and Markdown output.
//
// Importing this module installs exit and signal handlers that kill every process started with
// startProcess (its whole process group) and then run the cleanups registered with onExit.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const START_DEADLINE_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Processes: every child is started in its own process group (nginx and its worker die together)
// and killed when the script exits for any reason.

const live = new Set();
const exitCleanups = [];

/** Runs fn when the process exits (after every child is killed); for temp dirs. */
export function onExit(fn) {
  exitCleanups.push(fn);
}

process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      // Best effort: the process is exiting.
    }
  }
});
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping peers\n`);
    process.exit(code);
  });
}

/**
 * Pins this process, every thread of it, to one core: a benchmark whose client runs here and
 * whose server under test is pinned to another core keeps the client off the server's core.
 * Threads made later (libuv's pool) inherit it.
 */
export function pinSelf(core) {
  execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' });
}

export class PeerStartError extends Error {}

export function startProcess(name, cmd, args, { core, cwd = ROOT, env } = {}) {
  const argv = core === undefined ? [cmd, ...args] : ['taskset', '-c', String(core), cmd, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env ? { env } : {}),
  });
  child.label = name;
  child.stdoutText = '';
  child.stderrText = '';
  child.stdout.on('data', (chunk) => {
    child.stdoutText = (child.stdoutText + chunk).slice(-16_384);
  });
  child.stderr.on('data', (chunk) => {
    child.stderrText = (child.stderrText + chunk).slice(-16_384);
  });
  live.add(child);
  child.exited = new Promise((resolve) => {
    const done = (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    };
    child.once('exit', done);
    child.once('error', (err) => {
      child.stderrText += `${err.message}\n`;
      done(null, null);
    });
  });
  return child;
}

export function isRunning(child) {
  return child.exitCode === null && child.signalCode === null && live.has(child);
}

export function killGroup(child, signal) {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

export async function stopProcess(child) {
  if (isRunning(child)) {
    killGroup(child, 'SIGTERM');
    const timedOut = await Promise.race([child.exited.then(() => false), sleep(3000).then(() => true)]);
    if (timedOut) killGroup(child, 'SIGKILL');
    await child.exited;
  }
  // Stragglers in the group (an nginx worker whose master died first).
  killGroup(child, 'SIGKILL');
}

export function tail(text, max = 1200) {
  const t = text.trim();
  return t.length > max ? `…${t.slice(-max)}` : t;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function get(url, timeoutMs = 1000, headers = {}) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const opts = { agent: false, rejectUnauthorized: false, timeout: timeoutMs, headers };
    const req = mod.get(url, opts, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// Polls url until it answers 200, the process exits, or the deadline passes.
export async function waitFor200(url, child, deadlineMs = START_DEADLINE_MS, headers = {}) {
  const deadline = Date.now() + deadlineMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child && !isRunning(child)) {
      const { code, signal } = await child.exited;
      const output = tail(child.stderrText) || tail(child.stdoutText) || '(no output)';
      throw new PeerStartError(`exited (${signal ?? `code ${code}`}) before ${url} answered: ${output}`);
    }
    try {
      const res = await get(url, 500, headers);
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = err.code ?? err.message;
    }
    await sleep(50);
  }
  const output = child ? tail(child.stderrText) : '';
  throw new PeerStartError(
    `${url} did not answer 200 within ${deadlineMs} ms (last: ${last})${output ? `: ${output}` : ''}`,
  );
}

// ---------------------------------------------------------------------------------------------
// /proc readings: CPU time and RSS of a process and all its descendants (nginx's worker, for one).

// Ticks per second of /proc's CPU times; initClockTicks() reads the real value (getconf CLK_TCK).
export let clockTicks = 100;

export function initClockTicks() {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return clockTicks;
}

export function procTree(rootPid) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    if (!children.has(stat.ppid)) children.set(stat.ppid, []);
    children.get(stat.ppid).push(Number(entry));
  }
  const pids = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift();
    pids.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return pids;
}

export function readStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may contain spaces and parentheses; the fields after the last ')' are fixed.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(rest[1]),
    ticks: Number(rest[11]) + Number(rest[12]),
    userTicks: Number(rest[11]),
    // Children that have exited and been waited for: wrk, once its run is over.
    reapedTicks: Number(rest[13]) + Number(rest[14]),
  };
}

export function cpuSeconds(rootPid) {
  return cpuTimes(rootPid).total;
}

// CPU time of a process tree: in total and in user mode (the rest is the kernel's work for it:
// system calls, and on loopback the receiving side of what it sends).
export function cpuTimes(rootPid) {
  let ticks = 0;
  let userTicks = 0;
  for (const pid of procTree(rootPid)) {
    const stat = readStat(pid);
    ticks += stat?.ticks ?? 0;
    userTicks += stat?.userTicks ?? 0;
  }
  return { total: ticks / clockTicks, user: userTicks / clockTicks };
}

// Machine-wide CPU use, to tell how much of a run's time went to processes outside the benchmark
// (a build on the same host, say) and to the hypervisor (steal).
// Per core it counts interrupt time too: whether a core was saturated, whatever it was doing.
export function systemSeconds() {
  const out = { busy: 0, steal: 0, cores: {} };
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].split(/\s+/).map(Number);
    if (m[1] === '') {
      out.busy = (f[0] + f[1] + f[2]) / clockTicks;
      out.steal = (f[7] ?? 0) / clockTicks;
    } else {
      out.cores[m[1]] = (f[0] + f[1] + f[2] + f[5] + f[6]) / clockTicks;
    }
  }
  return out;
}

// A field of /proc/<pid>/status in MB (VmRSS, VmHWM), or null when the process is gone.
export function statusMb(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    // Exited between listing and reading.
    return null;
  }
}

// Peak of the summed VmRSS of a process tree, sampled; the tree is listed again every second.
export function startRssSampler(rootPid, everyMs = 50) {
  let pids = procTree(rootPid);
  let peak = 0;
  let listedAt = Date.now();
  const sample = () => {
    if (Date.now() - listedAt > 1000) {
      pids = procTree(rootPid);
      listedAt = Date.now();
    }
    let mb = 0;
    for (const pid of pids) mb += statusMb(pid, 'VmRSS') ?? 0;
    peak = Math.max(peak, mb);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    /** The peak so far; resetPeak() starts a new phase (an outage, then its catch-up). */
    peak: () => peak,
    resetPeak() {
      sample();
      peak = 0;
      sample();
    },
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

export function rssMb(rootPid) {
  let mb = 0;
  for (const pid of procTree(rootPid)) mb += statusMb(pid, 'VmRSS') ?? 0;
  return mb;
}

// ---------------------------------------------------------------------------------------------
// Output checks (logs): lines counted as they arrive, and the `seq` values of the final output.

// Counts '\n' in a file that grows, reading only what is new since the last call.
export class FileLineCounter {
  #file;
  #fd = null;
  #offset = 0;
  #buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  count = 0;

  constructor(file) {
    this.#file = file;
  }

  poll() {
    if (this.#fd === null) {
      try {
        this.#fd = fs.openSync(this.#file, 'r');
      } catch (err) {
        if (err.code === 'ENOENT') return this.count;
        throw err;
      }
    }
    for (;;) {
      const n = fs.readSync(this.#fd, this.#buf, 0, this.#buf.length, this.#offset);
      if (n === 0) break;
      this.#offset += n;
      for (let i = this.#buf.indexOf(10, 0); i !== -1 && i < n; i = this.#buf.indexOf(10, i + 1))
        this.count++;
    }
    return this.count;
  }

  close() {
    if (this.#fd !== null) fs.closeSync(this.#fd);
    this.#fd = null;
  }
}

// Which of seq 1..n the output holds: distinct, duplicated, missing, and lines without one.
export function checkSeqs(file, n) {
  const seen = new Uint8Array(n + 1);
  const out = { lines: 0, distinct: 0, duplicates: 0, missing: 0, withoutSeq: 0 };
  const key = Buffer.from('"seq":');
  let fd;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    out.missing = n;
    return out;
  }
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  let carry = 0;
  for (;;) {
    const got = fs.readSync(fd, buf, carry, buf.length - carry, null);
    const len = carry + got;
    const end = got === 0 ? len : buf.lastIndexOf(10, len - 1) + 1;
    let lineStart = 0;
    while (lineStart < end) {
      let nl = buf.indexOf(10, lineStart);
      if (nl === -1 || nl >= end) nl = end;
      out.lines++;
      const k = buf.indexOf(key, lineStart);
      if (k === -1 || k >= nl) {
        out.withoutSeq++;
      } else {
        let p = k + key.length;
        if (buf[p] === 34) p++; // a quoted number
        let v = 0;
        while (p < nl && buf[p] >= 48 && buf[p] <= 57) v = v * 10 + buf[p++] - 48;
        if (v < 1 || v > n) out.withoutSeq++;
        else if (seen[v]) out.duplicates++;
        else {
          seen[v] = 1;
          out.distinct++;
        }
      }
      lineStart = nl + 1;
    }
    if (got === 0) break;
    carry = len - end;
    if (carry === buf.length) throw new Error(`${file}: a line longer than ${buf.length} bytes`);
    buf.copy(buf, 0, end, len);
  }
  fs.closeSync(fd);
  out.missing = n - out.distinct;
  return out;
}

// Whether a Unix socket accepts a connection (syslog-ng's control socket: it is up).
export function canConnect(socketPath) {
  return new Promise((resolve) => {
    const s = net.connect(socketPath, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Output

export const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
export const fmtRatio = (n) => (n == null || !Number.isFinite(n) ? '—' : `${n.toFixed(2)}×`);

export function table(header, rows) {
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '--:')).join('|')}|`,
  ];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

// Text fit for one Markdown table cell.
export function clean(text) {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|');
}

// The first line a command prints (its version, say), or why it could not run.
export function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return `not found (${r.error.code})`;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim()) ?? '?';
}

// What every benchmark report starts with; each adds the versions of its own peers.
export function machineBasics() {
  const cpuModel = os.cpus()[0]?.model ?? '?';
  return {
    date: new Date().toISOString(),
    node: process.version,
    nproc: execFileSync('nproc', { encoding: 'utf8' }).trim(),
    cpu: cpuModel,
    kernel: `${os.type()} ${os.release()}`,
    loadavg: os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' '),
  };
}

// Runs scripts/install-peers.sh for the given binaries (output to stderr); throws when it fails.
export function installPeers(...binaries) {
  const install = spawnSync('bash', [path.join(ROOT, 'scripts', 'install-peers.sh'), ...binaries], {
    stdio: ['ignore', 2, 2],
  });
  if (install.status !== 0) throw new Error('scripts/install-peers.sh failed; see above');
}
