// `kill -9` of the real CLI while it ships a tailed file to a real ClickHouse, then a restart:
// every line written arrives, and each kill costs at most the one batch in flight sent twice.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../lib/wait-for.js';
import { type StartedClickhouse, startClickhouse } from './test-support/clickhouse.js';
import { freePort } from '../lib/free-port.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const BATCH = 1000;
/** Lines per append: a burst of the app's output. */
const BURST = 1000;
/** The writer stays at most this many lines ahead of what ClickHouse holds, so a kill always lands mid-shipping. */
const LEAD = 6000;
const WAIT_MS = 10_000;

let dir: string;
let ch: StartedClickhouse;
const children = new Set<ChildProcess>();
const proxies: TcpProxy[] = [];

// A test that fails half-way must not leave a pillion behind, nor one outlive the test process.
const killAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};
process.on('exit', killAll);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillion-crash-'));
  ch = await startClickhouse();
});

after(async () => {
  killAll();
  await Promise.all([...children].map(exited));
  process.off('exit', killAll);
  for (const p of proxies) await p.down();
  await ch?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Counts {
  count: number;
  uniq: number;
  min: number;
  max: number;
}

async function counts(table: string): Promise<Counts> {
  const out = await ch.query(
    `SELECT count(), uniqExact(seq), min(seq), max(seq) FROM ${table} FORMAT TabSeparated`,
  );
  const [count, uniq, min, max] = out.trim().split('\t').map(Number);
  return { count: count!, uniq: uniq!, min: min!, max: max! };
}

async function createTable(table: string): Promise<void> {
  await ch.query(`CREATE TABLE ${table} (seq UInt64, msg String) ENGINE = MergeTree ORDER BY seq`);
}

/** The app: numbered JSON lines appended in bursts to one path, rotated by rename. */
class Writer {
  readonly path: string;
  readonly total: number;
  readonly #rotateAt: readonly number[];
  written = 0;
  #rotations = 0;

  /** Rotates when `rotateAt` lines are written (multiples of BURST). */
  constructor(path: string, total: number, rotateAt: readonly number[] = []) {
    this.path = path;
    this.total = total;
    this.#rotateAt = rotateAt;
  }

  get done(): boolean {
    return this.written >= this.total;
  }

  burst(): void {
    if (this.#rotateAt.includes(this.written)) this.rotate();
    const to = Math.min(this.total, this.written + BURST);
    let s = '';
    for (let i = this.written; i < to; i++) s += `{"seq":${i},"msg":"line ${i} of the app","level":"info"}\n`;
    appendFileSync(this.path, s);
    this.written = to;
  }

  /** logrotate's default: the file is renamed and the next write creates a new one at the path. */
  rotate(): void {
    renameSync(this.path, `${this.path}.${++this.#rotations}`);
  }
}

/** One `pillion run` child; its output goes to a file quoted when it fails. */
class Pillion {
  readonly #cfg: string;
  readonly #log: string;
  child!: ChildProcess;

  constructor(cfg: string, log: string) {
    this.#cfg = cfg;
    this.#log = log;
  }

  start(): void {
    const fd = openSync(this.#log, 'a');
    try {
      this.child = spawn(process.execPath, [CLI, 'run', '-c', this.#cfg], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    children.add(this.child);
  }

  /** Throws (with its output) if the process has ended: a wait on it would only time out. */
  alive(): void {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null)
      throw new Error(`pillion exited (${c.exitCode ?? c.signalCode}):\n${this.output()}`);
  }

  async kill9(): Promise<void> {
    process.kill(this.child.pid!, 'SIGKILL');
    await exited(this.child);
  }

  async terminate(): Promise<number | null> {
    this.child.kill('SIGTERM');
    await exited(this.child);
    return this.child.exitCode;
  }

  output(): string {
    try {
      return readFileSync(this.#log, 'utf8').slice(-4000);
    } catch {
      return '(no output)';
    }
  }
}

function exited(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => c.once('exit', () => resolve()));
}

/**
 * Polls ClickHouse until `done` holds, feeding the writer meanwhile: a burst whenever it is less
 * than LEAD lines ahead of what arrived. Once `done` holds the writer is topped up again, so a kill
 * that follows lands while there is still something to ship: a reader woken by inotify can catch
 * up with LEAD lines between one count and the next.
 */
async function pump(
  table: string,
  p: Pillion,
  w: Writer,
  opts: { done: (c: Counts) => boolean; what: string },
): Promise<Counts> {
  return waitFor(
    async () => {
      p.alive();
      const c = await counts(table);
      while (!w.done && w.written - c.uniq < LEAD) w.burst();
      return opts.done(c) ? c : undefined;
    },
    { what: opts.what, timeoutMs: WAIT_MS, intervalMs: 5 },
  );
}

/**
 * A TCP forwarder to ClickHouse that can be taken down (connections cut, port refused) and back up,
 * or told to hold every request after the n-th answer (a batch that stays in flight).
 */
class TcpProxy {
  readonly #target: number;
  #server: net.Server | undefined;
  #sockets = new Set<net.Socket>();
  #answers = 0;
  #holdAfter = Infinity;
  /** Bytes of requests held back. */
  held = 0;
  port = 0;

  constructor(target: number) {
    this.#target = target;
  }

  /** Forwards no request bytes once n answers have gone back (Infinity: forward everything again). */
  holdAfter(n: number): void {
    this.#holdAfter = n;
    this.#answers = 0;
    this.held = 0;
  }

  async up(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target, '127.0.0.1');
      this.#sockets.add(client).add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      for (const s of [client, upstream]) s.on('error', end).on('close', end);
      client.on('data', (d: Buffer) => {
        if (this.#answers >= this.#holdAfter) this.held += d.length;
        else upstream.write(d);
      });
      // Counted before they are passed on: the request an answer releases is then already held.
      upstream.on('data', (d: Buffer) => {
        for (let i = d.indexOf('HTTP/1.1 '); i >= 0; i = d.indexOf('HTTP/1.1 ', i + 1)) this.#answers++;
        client.write(d);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

function config(
  d: string,
  url: string,
  table: string,
  disk: boolean,
  adminPort: number,
  intervals = ', pollInterval: 10ms, globInterval: 20ms',
): string {
  const path = join(d, 'pillion.yaml');
  writeFileSync(
    path,
    `
admin:
  listen: "127.0.0.1:${adminPort}"
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/app.log"], parser: json${intervals} }
  sinks:
    ch:
      type: clickhouse
      url: ${url}
      table: ${table}
      skipUnknownFields: true
      batch: { maxEvents: ${BATCH}, maxAge: 50ms }
      retry: { initialBackoff: 5ms, maxBackoff: 50ms, timeout: 2s }
${disk ? '      buffer: { type: disk, maxBytes: 64MiB }\n' : ''}`,
  );
  return path;
}

/** A sample from the admin server's /metrics (0 when absent). */
async function metric(adminPort: number, name: string, labels: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('kill -9 twice while shipping, across rotations: every line arrives, each kill repeats at most one batch', async (t) => {
  const d = join(dir, 'memory');
  mkdirSync(join(d, 'in'), { recursive: true });
  const table = 'crash_memory';
  await createTable(table);
  const total = 60_000;
  // The writer rotates at 30,000 lines, while the second pillion runs.
  const w = new Writer(join(d, 'in', 'app.log'), total, [30_000]);
  const p = new Pillion(config(d, ch.url, table, false, await freePort()), join(d, 'pillion.out'));

  p.start();
  const atKill1 = await pump(table, p, w, { done: (c) => c.count >= 15_000, what: '15,000 rows' });
  await p.kill9();
  assert.ok(atKill1.uniq < w.written, 'killed with lines still to ship');

  p.start();
  const atKill2 = await pump(table, p, w, { done: (c) => c.count >= 40_000, what: '40,000 rows' });
  await p.kill9();
  assert.ok(atKill2.uniq < w.written, 'killed with lines still to ship');
  // Rotated while pillion is down: the renamed file no longer matches, and resumes from its checkpoint.
  w.rotate();
  w.burst();

  p.start();
  const final = await pump(table, p, w, { done: (c) => c.uniq === total, what: 'every line' });
  assert.equal(await p.terminate(), 0);
  const settled = await counts(table);

  assert.equal(settled.uniq, total, 'nothing lost');
  assert.deepEqual([settled.min, settled.max], [0, total - 1]);
  assert.equal(settled.count, final.count, 'nothing arrived after the last line');
  const dup1 = atKill2.count - atKill2.uniq;
  const dup2 = settled.count - settled.uniq - dup1;
  t.diagnostic(`memory buffer: duplicates after kill 1: ${dup1}, after kill 2: ${dup2}`);
  assert.ok(dup1 <= BATCH, `kill 1 repeated ${dup1} events, more than one batch`);
  assert.ok(dup2 <= BATCH, `kill 2 repeated ${dup2} events, more than one batch`);
});

test('kill -9 with events in the disk buffer while ClickHouse is unreachable, and again while it catches up', async (t) => {
  const d = join(dir, 'disk');
  mkdirSync(join(d, 'in'), { recursive: true });
  const table = 'crash_disk';
  await createTable(table);
  const total = 40_000;
  const proxy = new TcpProxy(Number(new URL(ch.url).port));
  proxies.push(proxy);
  await proxy.up();
  const adminPort = await freePort();
  const w = new Writer(join(d, 'in', 'app.log'), total, [25_000]);
  const p = new Pillion(
    config(d, `http://127.0.0.1:${proxy.port}`, table, true, adminPort),
    join(d, 'pillion.out'),
  );

  p.start();
  await pump(table, p, w, { done: (c) => c.count >= 10_000, what: '10,000 rows' });
  await proxy.down();
  // ClickHouse is unreachable: the rest is written (with a rotation) and read into the disk buffer.
  while (!w.done) w.burst();
  const atDown = await counts(table);
  await waitFor(
    async () => {
      p.alive();
      return (
        (await metric(adminPort, 'pillion_logs_events_total', 'component="app",direction="in"')) === total &&
        (await metric(adminPort, 'pillion_logs_retries_total', 'sink="ch"')) > 0 &&
        (await metric(adminPort, 'pillion_logs_buffer_bytes', 'sink="ch"')) > 0
      );
    },
    { what: 'every line read into the disk buffer', timeoutMs: WAIT_MS },
  );
  await p.kill9();
  assert.ok(total - atDown.uniq > 20_000, 'most lines sat in the disk buffer');

  await proxy.up();
  p.start();
  const atKill2 = await pump(table, p, w, {
    done: (c) => c.count >= atDown.count + 10_000,
    what: 'the disk buffer to be partly delivered',
  });
  await p.kill9();
  assert.ok(atKill2.uniq < total, 'killed with events still in the disk buffer');

  p.start();
  const final = await pump(table, p, w, { done: (c) => c.uniq === total, what: 'every line' });
  assert.equal(await p.terminate(), 0);
  const settled = await counts(table);

  assert.equal(settled.uniq, total, 'nothing lost');
  assert.deepEqual([settled.min, settled.max], [0, total - 1]);
  assert.equal(settled.count, final.count, 'nothing arrived after the last line');
  // Kill 1 includes the batch that was in flight when the connections were cut.
  const dup1 = atKill2.count - atKill2.uniq;
  const dup2 = settled.count - settled.uniq - dup1;
  t.diagnostic(`disk buffer: duplicates after kill 1: ${dup1}, after kill 2: ${dup2}`);
  assert.ok(dup1 <= BATCH, `kill 1 repeated ${dup1} events, more than one batch`);
  assert.ok(dup2 <= BATCH, `kill 2 repeated ${dup2} events, more than one batch`);
});

test('regression: a kill after part of one large read was delivered repeats only the batch in flight', async (t) => {
  // 20,000 lines already there: the tail's first read (256 KiB) is one chunk of about 4,300 events.
  // ClickHouse stores the first two batches; the third is held in flight; then kill -9.
  const d = join(dir, 'partial');
  mkdirSync(join(d, 'in'), { recursive: true });
  const table = 'crash_partial';
  await createTable(table);
  const total = 20_000;
  const w = new Writer(join(d, 'in', 'app.log'), total);
  while (!w.done) w.burst();
  const proxy = new TcpProxy(Number(new URL(ch.url).port));
  proxies.push(proxy);
  proxy.holdAfter(2);
  await proxy.up();
  const p = new Pillion(
    config(d, `http://127.0.0.1:${proxy.port}`, table, false, await freePort()),
    join(d, 'pillion.out'),
  );

  p.start();
  await waitFor(
    async () => {
      p.alive();
      return proxy.held > 0 && (await counts(table)).count === 2 * BATCH;
    },
    { what: 'two batches stored and the third in flight', timeoutMs: WAIT_MS },
  );
  await p.kill9();
  assert.equal((await counts(table)).count, 2 * BATCH);

  proxy.holdAfter(Infinity);
  p.start();
  await pump(table, p, w, { done: (c) => c.uniq === total, what: 'every line' });
  assert.equal(await p.terminate(), 0);
  const settled = await counts(table);
  assert.equal(settled.uniq, total, 'nothing lost');
  const dup = settled.count - settled.uniq;
  t.diagnostic(`partly delivered read: duplicates after the kill: ${dup}`);
  // The batch in flight never reached ClickHouse: nothing needs sending twice. Up to one batch is allowed.
  assert.ok(dup <= BATCH, `the kill repeated ${dup} events, more than one batch`);
});

/**
 * The app of the rotation test, as a child process: numbered JSON lines at a steady rate, in a
 * burst every 10 ms, and every `renameMs` its file renamed to `app.log.<n>` (the next burst makes
 * a new one at the path, as logrotate's default does). Prints "done" when all are written.
 */
const ROTATING_WRITER = `
  const fs = require('node:fs');
  const [path, total, perSecond, renameMs] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
  const started = Date.now();
  let written = 0;
  let renames = 0;
  let lastRename = started;
  const tick = () => {
    const due = Math.min(total, Math.floor(((Date.now() - started) * perSecond) / 1000));
    let s = '';
    for (; written < due; written++) s += '{"seq":' + written + ',"msg":"line ' + written + ' of the app"}\\n';
    if (s) fs.appendFileSync(path, s);
    if (Date.now() - lastRename >= renameMs && written < total) {
      fs.renameSync(path, path + '.' + ++renames);
      console.log('app.log.' + renames + ' ends before ' + written);
      lastRename = Date.now();
    }
    if (written >= total) {
      console.log('done ' + renames);
      return;
    }
    setTimeout(tick, 10);
  };
  tick();
`;

test('regression: rename rotation of a live-name-only glob with repeated kill -9 restarts loses no line; each restart repeats at most one batch', async (t) => {
  const d = join(dir, 'rotation');
  mkdirSync(join(d, 'in'), { recursive: true });
  const table = 'crash_rotation';
  await createTable(table);
  const total = 100_000;
  const path = join(d, 'in', 'app.log');
  // The defaults (poll 250 ms, glob 1 s): the file stays at its name for 300 ms, less than a glob.
  const adminPort = await freePort();
  const p = new Pillion(config(d, ch.url, table, false, adminPort, ''), join(d, 'pillion.out'));
  p.start();
  // The app starts once pillion runs: files rotated away before its first start are not its to know.
  await waitFor(
    async () => {
      p.alive();
      return (await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.status === 200;
    },
    { what: 'pillion ready', timeoutMs: WAIT_MS },
  );
  const writer = spawn(process.execPath, ['-e', ROTATING_WRITER, path, String(total), '20000', '300'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(writer);
  let writerOut = '';
  writer.stdout!.on('data', (b: Buffer) => (writerOut += b.toString()));
  const restarts = 4;
  let shipped = 0;
  for (let k = 0; k < restarts; k++) {
    // Killed while it ships: once it has delivered more since it (re)started.
    const at = await waitFor(
      async () => {
        p.alive();
        const c = await counts(table);
        return c.count >= shipped + 2000 ? c : undefined;
      },
      { what: `shipping before kill ${k + 1}`, timeoutMs: 20_000 },
    );
    shipped = at.count;
    await p.kill9();
    p.start();
  }
  await exited(writer);
  assert.equal(writer.exitCode, 0);
  const final = await waitFor(
    async () => {
      p.alive();
      const c = await counts(table);
      return c.uniq === total ? c : undefined;
    },
    { what: 'every line', timeoutMs: 30_000 },
  ).catch(async (err: Error) => {
    // Which lines, so a failure says where to look (each file's range is in the writer's output).
    const seqs = (await ch.query(`SELECT DISTINCT seq FROM ${table} ORDER BY seq FORMAT TabSeparated`))
      .trim()
      .split('\n')
      .map(Number);
    const gaps: string[] = [];
    let next = 0;
    for (const q of [...seqs, total]) {
      if (q > next) gaps.push(`${next}-${q - 1}`);
      next = q + 1;
    }
    throw new Error(`${err.message}; missing ${gaps.join(', ')}; ${writerOut.trim()}\n${p.output()}`);
  });
  assert.equal(await p.terminate(), 0);
  const settled = await counts(table);
  assert.equal(settled.uniq, total, 'nothing lost');
  assert.deepEqual([settled.min, settled.max], [0, total - 1]);
  assert.equal(settled.count, final.count, 'nothing arrived after the last line');
  const dup = settled.count - settled.uniq;
  t.diagnostic(`${writerOut.trim()} renames; ${restarts} kills; duplicates: ${dup}`);
  assert.ok(dup <= restarts * BATCH, `${dup} events repeated, more than one batch per restart`);
});
