import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import pino from 'pino';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import type { AppConfig } from './config.js';
import { loadPillionConfig, pillionJsonSchemaOf } from '../roles.js';
import type { Module, ModuleDefinition, ReloadResult } from './module.js';
import { Runtime } from './runtime.js';

const silent = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A module that records what the runtime asks of it; reloads in place unless the port changes. */
class Recorder implements Module<AppConfig> {
  static log: string[] = [];
  static failStartOnPort: number | undefined;
  static drainForever = false;
  static stopForever = false;
  static ready = true;
  #section: AppConfig;
  constructor(section: AppConfig) {
    this.#section = section;
  }
  async start() {
    if (this.#section.port === Recorder.failStartOnPort) throw new Error(`port ${this.#section.port} in use`);
    Recorder.log.push(`start ${this.#section.port}`);
  }
  async reload(section: AppConfig): Promise<ReloadResult> {
    if (section.port !== this.#section.port) return 'restart-needed';
    Recorder.log.push(`reload ${section.health.path}`);
    this.#section = section;
    return 'applied';
  }
  async drain(deadline: number) {
    Recorder.log.push(`drain until ${deadline}`);
    if (Recorder.drainForever) await new Promise(() => {});
  }
  async stop() {
    Recorder.log.push(`stop ${this.#section.port}`);
    if (Recorder.stopForever) await new Promise(() => {});
  }
  readiness() {
    return Recorder.ready ? { ready: true } : { ready: false, reason: 'not yet' };
  }
}

const recorder: ModuleDefinition<AppConfig> = {
  name: 'recorder',
  section: (c) => c.app,
  create: (s) => new Recorder(s),
};

function configDir() {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-rt-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const CONFIG = (port: number, path = '/', extra = '') =>
  `admin:\n  listen: 127.0.0.1:0\nruntime:\n  drainTimeout: 3s\napp:\n  port: ${port}\n  health:\n    path: ${path}\n${extra}`;

async function startRuntime(
  file: string,
  opts: { clock?: FakeClock; watch?: false | { debounceMs?: number; pollMs?: number } } = {},
) {
  const loaded = await loadPillionConfig(file, {});
  assert.ok(loaded.ok, loaded.ok ? '' : JSON.stringify(loaded.issues));
  Recorder.log = [];
  Recorder.failStartOnPort = undefined;
  Recorder.drainForever = false;
  Recorder.stopForever = false;
  Recorder.ready = true;
  const rt = new Runtime({
    initial: { config: loaded.config, raw: loaded.raw, text: loaded.text },
    configFile: file,
    loadConfig: loadPillionConfig,
    jsonSchema: pillionJsonSchemaOf,
    env: {},
    logger: silent,
    modules: [recorder as ModuleDefinition<unknown>],
    ...(opts.clock ? { clock: opts.clock } : {}),
    watch: opts.watch ?? { debounceMs: 20, pollMs: 60_000 },
  });
  await rt.start();
  cleanups.push(() => rt.shutdown('test end'));
  const base = `http://127.0.0.1:${rt.adminAddress!.port}`;
  return { rt, base };
}

test('starts enabled modules and serves the admin API over HTTP', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9001));
  const { base } = await startRuntime(file, { watch: false });
  assert.deepEqual(Recorder.log, ['start 9001']);

  assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok\n');
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), {
    ready: true,
    state: 'running',
    checks: [{ name: 'recorder', ready: true }],
  });

  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^pillion_ready 1$/m);
  assert.match(metrics, /^process_cpu_seconds_total /m);
  assert.match(metrics, /^pillion_config_last_reload_successful 1$/m);

  const config = (await (await fetch(`${base}/config`)).json()) as any;
  assert.equal(config.source, file);
  assert.equal(config.config.app.port, 9001);
  assert.equal(config.config.app.health.interval, '5s', 'defaults are filled in, as written');
  assert.equal(config.lastReload, null);

  assert.equal((await fetch(`${base}/nope`)).status, 404);
  const wrong = await fetch(`${base}/reload`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST');
  const cross = await fetch(`${base}/quitquitquit`, {
    method: 'POST',
    headers: { origin: 'http://evil.example' },
  });
  assert.equal(cross.status, 403);
  assert.equal(((await cross.json()) as any).error.code, 'PILLION_ERR_ADMIN_CROSS_ORIGIN');
});

test('/readyz is 503 and says which module is not ready', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9002));
  const { base } = await startRuntime(file, { watch: false });
  Recorder.ready = false;
  const r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 503);
  assert.deepEqual(((await r.json()) as any).checks, [{ name: 'recorder', ready: false, reason: 'not yet' }]);
  assert.match(await (await fetch(`${base}/metrics`)).text(), /^pillion_ready 0$/m);
  Recorder.ready = true;
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
});

test('POST /reload applies a change in place, or restarts only the module that needs it', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9003));
  const { base } = await startRuntime(file, { watch: false });

  writeFileSync(file, CONFIG(9003, '/health'));
  const inPlace = await fetch(`${base}/reload`, { method: 'POST' });
  assert.equal(inPlace.status, 200);
  assert.deepEqual(await inPlace.json(), {
    ok: true,
    trigger: 'POST /reload',
    changed: ['recorder'],
    restarted: [],
  });
  assert.deepEqual(Recorder.log, ['start 9003', 'reload /health']);

  writeFileSync(file, CONFIG(9004, '/health'));
  const restart = (await (await fetch(`${base}/reload`, { method: 'POST' })).json()) as any;
  assert.deepEqual(restart.restarted, ['recorder']);
  assert.deepEqual(
    Recorder.log.slice(2),
    ['stop 9003', 'start 9004'],
    'the old instance stops before the new one binds',
  );

  const same = (await (await fetch(`${base}/reload`, { method: 'POST' })).json()) as any;
  assert.deepEqual(same.changed, []);
});

test('a bad reload keeps the old config running and reports the errors on /config and /metrics', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9005));
  const { rt, base } = await startRuntime(file, { watch: false });

  writeFileSync(file, `${CONFIG(9006)}  bogus: 1\n`);
  const res = await fetch(`${base}/reload`, { method: 'POST' });
  assert.equal(res.status, 422);
  const body = (await res.json()) as any;
  assert.equal(body.code, 'PILLION_ERR_RUNTIME_RELOAD_REJECTED');
  assert.equal(body.issues[0].code, 'PILLION_ERR_CONFIG_UNKNOWN_KEY');
  assert.deepEqual(Recorder.log, ['start 9005'], 'nothing was stopped or started');
  assert.equal(rt.config.app?.port, 9005);

  const view = (await (await fetch(`${base}/config`)).json()) as any;
  assert.equal(view.config.app.port, 9005);
  assert.equal(view.lastReload.ok, false);
  assert.deepEqual(view.lastReload.errors, [
    `${file}:9:3 PILLION_ERR_CONFIG_UNKNOWN_KEY app.bogus: unknown key (known keys: host, port, health)`,
  ]);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^pillion_config_last_reload_successful 0$/m);
  assert.match(metrics, /^pillion_config_reloads_total\{result="failure"\} 1$/m);

  writeFileSync(file, CONFIG(9005, '/fixed'));
  assert.equal((await rt.reload('test')).ok, true);
  assert.match(await (await fetch(`${base}/metrics`)).text(), /^pillion_config_last_reload_successful 1$/m);
});

test('a module that cannot start with the new config is restored with the old one', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9007));
  const { rt } = await startRuntime(file, { watch: false });
  Recorder.failStartOnPort = 9008;
  writeFileSync(file, CONFIG(9008));
  const outcome = await rt.reload('test');
  assert.equal(outcome.ok, false);
  assert.ok(
    !outcome.ok &&
      outcome.code === 'PILLION_ERR_RUNTIME_MODULE_START' &&
      outcome.message.includes('port 9008 in use'),
  );
  // the half-started new instance is cleaned up before the old config is restored
  assert.deepEqual(Recorder.log, ['start 9007', 'stop 9007', 'stop 9008', 'start 9007']);
  assert.equal(rt.readiness().checks.length, 1);
});

test('removing a section drains and stops its module; adding one starts it', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, 'admin:\n  listen: 127.0.0.1:0\n');
  const { rt } = await startRuntime(file, { watch: false });
  assert.deepEqual(Recorder.log, []);
  writeFileSync(file, CONFIG(9009));
  assert.deepEqual(await rt.reload('test'), {
    ok: true,
    trigger: 'test',
    changed: ['recorder'],
    restarted: [],
  });
  writeFileSync(file, 'admin:\n  listen: 127.0.0.1:0\n');
  await rt.reload('test');
  assert.equal(Recorder.log[0], 'start 9009');
  assert.match(Recorder.log[1]!, /^drain until \d+$/);
  assert.equal(Recorder.log[2], 'stop 9009');
  assert.equal(rt.readiness().checks.length, 0);
});

test('the config file is watched: in-place edits, rename-replace and a Kubernetes ..data swap all reload', async () => {
  const dir = configDir();
  // Lay the file out as a ConfigMap volume does: pillion.yaml -> ..data/pillion.yaml, ..data -> ..v1
  mkdirSync(join(dir, '..v1'));
  writeFileSync(join(dir, '..v1', 'pillion.yaml'), CONFIG(9010, '/v1'));
  symlinkSync('..v1', join(dir, '..data'));
  symlinkSync('..data/pillion.yaml', join(dir, 'pillion.yaml'));
  const file = join(dir, 'pillion.yaml');
  const { rt } = await startRuntime(file);

  // 1. the kubelet's atomic swap: write ..v2, point ..data_tmp at it, rename over ..data
  mkdirSync(join(dir, '..v2'));
  writeFileSync(join(dir, '..v2', 'pillion.yaml'), CONFIG(9010, '/v2'));
  symlinkSync('..v2', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  await waitFor(() => Recorder.log.includes('reload /v2'), { what: 'reload after ..data swap' });

  // 2. an editor's save: write a temp file and rename it over the config (replacing the symlink)
  writeFileSync(join(dir, '.pillion.yaml.swp'), CONFIG(9010, '/v3'));
  renameSync(join(dir, '.pillion.yaml.swp'), file);
  await waitFor(() => Recorder.log.includes('reload /v3'), { what: 'reload after rename' });

  // 3. in place
  writeFileSync(file, CONFIG(9010, '/v4'));
  await waitFor(() => Recorder.log.includes('reload /v4'), { what: 'reload after in-place write' });

  // 4. a bad save is reported and the running config stays
  writeFileSync(file, CONFIG(9010, 'no-slash'));
  await waitFor(async () => ((await rt.configView()) as any).lastReload?.ok === false, {
    what: 'failed reload recorded',
  });
  assert.equal(rt.config.app?.health.path, '/v4');
  assert.equal(
    Recorder.log.filter((l) => l.startsWith('reload')).length,
    3,
    'each change reloaded exactly once',
  );
});

test('shutdown stops readiness, drains until the deadline, then stops every module', async () => {
  const clock = new FakeClock();
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9011));
  const { rt, base } = await startRuntime(file, { clock, watch: false });
  Recorder.drainForever = true;

  const done = rt.shutdown('SIGTERM');
  await waitFor(() => Recorder.log.some((l) => l.startsWith('drain')), { what: 'drain to begin' });
  assert.equal(Recorder.log.at(-1), `drain until ${clock.now() + 3000}`);
  const r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 503);
  assert.equal(((await r.json()) as any).state, 'draining');
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'liveness holds while draining');
  const reload = await rt.reload('late');
  assert.ok(!reload.ok && reload.code === 'PILLION_ERR_RUNTIME_SHUTTING_DOWN');

  await clock.advance(2999);
  assert.ok(!Recorder.log.some((l) => l.startsWith('stop')), 'not stopped before the deadline');
  await clock.advance(1);
  await done;
  assert.equal(Recorder.log.at(-1), 'stop 9011');
  await assert.rejects(fetch(`${base}/healthz`), 'the admin server is closed');
});

test('regression: a module that never finishes stopping does not keep the process up: done after drainTimeout + stopTimeout', async () => {
  const clock = new FakeClock();
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9014).replace('drainTimeout: 3s', 'drainTimeout: 3s\n  stopTimeout: 2s'));
  const { rt, base } = await startRuntime(file, { clock, watch: false });
  Recorder.drainForever = true;
  Recorder.stopForever = true;
  let finished = false;
  const done = rt.shutdown('SIGTERM').then(() => {
    finished = true;
  });
  await waitFor(() => Recorder.log.some((l) => l.startsWith('drain')), { what: 'drain to begin' });
  await clock.advance(3000);
  await waitFor(() => Recorder.log.includes('stop 9014'), { what: 'stop to begin' });
  await clock.advance(1999);
  assert.equal(finished, false, 'still waiting for the module within stopTimeout');
  await clock.advance(1);
  await done;
  assert.equal(rt.stoppedCleanly, false);
  assert.equal(rt.readiness().state, 'stopped');
  await assert.rejects(fetch(`${base}/healthz`), 'the admin server is closed');
});

test('POST /quitquitquit answers, then shuts the process down gracefully', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9012));
  const { rt, base } = await startRuntime(file, { watch: false });
  const res = await fetch(`${base}/quitquitquit`, { method: 'POST' });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'shutting down\n');
  await rt.done;
  assert.deepEqual(Recorder.log.slice(-2), [Recorder.log.at(-2), 'stop 9012']);
  assert.equal(rt.stoppedCleanly, true);
});

test('changing admin.listen moves the admin server', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, 'admin:\n  listen: 127.0.0.1:0\n');
  const { rt, base } = await startRuntime(file, { watch: false });
  writeFileSync(file, 'admin:\n  listen: "[::1]:0"\n');
  const outcome = await rt.reload('test');
  assert.ok(outcome.ok && outcome.changed.includes('admin'));
  assert.equal(rt.adminAddress?.host, '::1');
  await assert.rejects(fetch(`${base}/healthz`));
  assert.equal((await fetch(`http://[::1]:${rt.adminAddress!.port}/healthz`)).status, 200);
});

test('regression: a shutdown that arrives during start stops what started and leaves nothing running', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, CONFIG(9013));
  const loaded = await loadPillionConfig(file, {});
  assert.ok(loaded.ok);
  let release!: () => void;
  const log: string[] = [];
  const slow: ModuleDefinition<unknown> = {
    name: 'slow',
    section: () => ({}),
    create: () => ({
      start: () =>
        new Promise<void>((r) => {
          release = r;
          log.push('start');
        }),
      reload: async () => 'applied',
      drain: async () => void log.push('drain'),
      stop: async () => void log.push('stop'),
      readiness: () => ({ ready: true }),
    }),
  };
  const rt = new Runtime({
    initial: { config: loaded.config, raw: loaded.raw, text: loaded.text },
    configFile: file,
    loadConfig: loadPillionConfig,
    jsonSchema: pillionJsonSchemaOf,
    env: {},
    logger: silent,
    modules: [slow, recorder as ModuleDefinition<unknown>],
    watch: false,
  });
  const starting = rt.start();
  await waitFor(() => log.includes('start'), { what: 'slow module to begin starting' });
  const stopping = rt.shutdown('SIGTERM');
  release();
  await starting;
  await stopping;
  assert.deepEqual(log, ['start', 'drain', 'stop']);
  assert.equal(Recorder.log.length, 0, 'modules after the slow one were never started');
  assert.equal(rt.readiness().state, 'stopped');
  assert.equal(rt.adminAddress, undefined, 'the admin server is closed');
});

test('regression: POST /reload that moves the admin server still gets its answer', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, 'admin:\n  listen: 127.0.0.1:0\n');
  const { rt, base } = await startRuntime(file, { watch: false });
  writeFileSync(file, 'admin:\n  listen: "[::1]:0"\n');
  const res = await fetch(`${base}/reload`, { method: 'POST' });
  assert.equal(res.status, 200);
  assert.deepEqual(((await res.json()) as any).changed, ['admin']);
  assert.equal(rt.adminAddress?.host, '::1');
});

test('regression: a failed admin move is retried by the next reload, and a same-port host change works', async () => {
  const holder = (await import('node:net')).createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const busy = (holder.address() as { port: number }).port;
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, 'admin:\n  listen: 127.0.0.1:0\n');
  const { rt } = await startRuntime(file, { watch: false });
  writeFileSync(file, `admin:\n  listen: 127.0.0.1:${busy}\n`);
  const failed = await rt.reload('test');
  assert.ok(!failed.ok && failed.message.includes('EADDRINUSE'));
  await new Promise((r) => holder.close(r));
  const retried = await rt.reload('test');
  assert.ok(retried.ok && retried.changed.includes('admin'), JSON.stringify(retried));
  assert.equal(rt.adminAddress?.port, busy);

  writeFileSync(file, `admin:\n  listen: localhost:${busy}\n`);
  const moved = await rt.reload('test');
  assert.ok(moved.ok, JSON.stringify(moved));
  assert.equal(rt.adminAddress?.port, busy);
  assert.equal((await fetch(`http://localhost:${busy}/healthz`)).status, 200);
});

test('regression: DNS rebinding — a request naming another host is refused, loopback names are served', async () => {
  const file = join(configDir(), 'pillion.yaml');
  writeFileSync(file, 'admin:\n  listen: 127.0.0.1:0\n');
  const { rt } = await startRuntime(file, { watch: false });
  const port = rt.adminAddress!.port;
  const { request } = await import('node:http');
  const send = (host: string, method = 'GET', path = '/config') =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method,
          headers: { host, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
  assert.equal(await send(`attacker.example:${port}`), 403);
  assert.equal(await send(`attacker.example:${port}`, 'POST', '/quitquitquit'), 403);
  assert.equal(await send(`localhost:${port}`), 200);
  assert.equal(await send(`127.0.0.1:${port}`), 200);
  assert.equal(rt.readiness().state, 'running');
});
