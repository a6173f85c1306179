import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import pino from 'pino';
import { FakeClock } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import { waitFor } from '../lib/wait-for.js';
import { createMetricsRegistry } from '../metrics/index.js';
import { HealthSignal } from '../runtime/health-signal.js';
import { syncSchema } from './config.js';
import { SyncEngine } from './engine.js';
import type { Source, SourceHost } from './sources/index.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'pillion-sync-'));
  dirs.push(d);
  return d;
}

/** Sources whose values the test pushes through their host. */
function pushSources() {
  const hosts = new Map<string, SourceHost>();
  const createSource = (name: string, _cfg: unknown, host: SourceHost): Source => ({
    start: () => void hosts.set(name, host),
    stop: () => {},
  });
  return { hosts, createSource };
}

function logCapture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

function engine(
  sync: unknown,
  opts: {
    clock?: FakeClock;
    health?: HealthSignal;
    push?: ReturnType<typeof pushSources>;
    logger?: pino.Logger;
  } = {},
) {
  const clock = opts.clock ?? new FakeClock();
  const metrics = createMetricsRegistry();
  const cfg = syncSchema.parse(sync);
  const e = new SyncEngine(cfg, {
    clock,
    random: () => 0.5,
    logger: opts.logger ?? pino({ level: 'silent' }),
    metrics,
    env: { REGION: 'eu-west-1' },
    appHealth: opts.health,
    ...(opts.push ? { createSource: opts.push.createSource as never } : {}),
  });
  return { e, clock, metrics };
}

async function metric(
  metrics: ReturnType<typeof createMetricsRegistry>,
  name: string,
  labels: Record<string, string>,
) {
  const m = (await metrics.getSingleMetric(name)!.get()).values.find((v) =>
    Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return m?.value ?? 0;
}

test('a literal renders through a template into a file; an equal render writes nothing', async () => {
  const d = tmp();
  const out = join(d, 'app.conf');
  const { e, metrics } = engine({
    sources: { cfg: { type: 'literal', value: { host: 'db', port: 5432 } } },
    destinations: {
      conf: { path: out, template: 'host={{ cfg.host }}:{{ cfg.port }} region={{ "REGION" | env }}\n' },
    },
  });
  assert.deepEqual(await e.start(), []);
  assert.equal(readFileSync(out, 'utf8'), 'host=db:5432 region=eu-west-1\n');
  assert.equal(statSync(out).mode & 0o777, 0o644);
  const ino = statSync(out).ino;
  assert.deepEqual(e.readiness(), { ready: true });
  e.stop();
  // A second engine (a restart) finds the same content and does not write.
  const again = engine({
    sources: { cfg: { type: 'literal', value: { host: 'db', port: 5432 } } },
    destinations: {
      conf: { path: out, template: 'host={{ cfg.host }}:{{ cfg.port }} region={{ "REGION" | env }}\n' },
    },
  });
  await again.e.start();
  assert.equal(statSync(out).ino, ino, 'not replaced');
  assert.equal(
    await metric(again.metrics, 'pillion_sync_renders_total', { destination: 'conf', result: 'unchanged' }),
    1,
  );
  assert.equal(
    await metric(metrics, 'pillion_sync_renders_total', { destination: 'conf', result: 'written' }),
    1,
  );
  again.e.stop();
});

test('dependency tracking: one key of 100 changes, one of 100 templates renders', async () => {
  const d = tmp();
  const push = pushSources();
  const destinations: Record<string, unknown> = {};
  for (let i = 0; i < 100; i++)
    destinations[`t${i}`] = { path: join(d, `t${i}.txt`), template: `v={{ kv.k${i} }}` };
  const { e } = engine({ sources: { kv: { type: 'directory', path: d } }, destinations }, { push });
  const started = e.start();
  await waitFor(() => push.hosts.get('kv'));
  const values = new Map(Array.from({ length: 100 }, (_, i) => [`k${i}`, `a${i}`]));
  push.hosts.get('kv')!.update(values, 'v1');
  await started;
  for (let i = 0; i < 100; i++) assert.equal(e.renders(`t${i}`), 1);
  values.set('k42', 'changed');
  push.hosts.get('kv')!.update(new Map(values), 'v2');
  await e.idle();
  const rendered = Array.from({ length: 100 }, (_, i) => e.renders(`t${i}`)).filter((n) => n > 1);
  assert.deepEqual(rendered, [2], 'only t42 rendered again');
  assert.equal(e.renders('t42'), 2);
  assert.equal(readFileSync(join(d, 't42.txt'), 'utf8'), 'v=changed');
  e.stop();
});

test("wait debounces a burst on the injected clock (consul-template's min and max)", async () => {
  const d = tmp();
  const push = pushSources();
  const out = join(d, 'out');
  const { e, clock } = engine(
    {
      sources: { s: { type: 'file', path: join(d, 'in') } },
      destinations: { o: { path: out, source: 's', wait: { min: '1s', max: '3s' } } },
    },
    { push },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('s'));
  const host = push.hosts.get('s')!;
  host.update(new Map([['', 'v0']]), '0');
  await started;
  assert.equal(readFileSync(out, 'utf8'), 'v0', 'the first render does not wait');
  host.update(new Map([['', 'v1']]), '1');
  await clock.advance(500);
  host.update(new Map([['', 'v2']]), '2');
  await clock.advance(999);
  assert.equal(readFileSync(out, 'utf8'), 'v0', 'quiet for less than min since the last change');
  await clock.advance(1);
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'v2', 'one render for the burst');
  assert.equal(e.renders('o'), 2);
  // A change every 500 ms never leaves min quiet: max forces a render 3 s after the burst began.
  for (let i = 0; i < 5; i++) {
    host.update(new Map([['', `w${i}`]]), `w${i}`);
    await clock.advance(500);
  }
  host.update(new Map([['', 'w5']]), 'w5');
  assert.equal(e.renders('o'), 2);
  await clock.advance(500);
  await e.idle();
  assert.equal(e.renders('o'), 3, 'rendered at max');
  assert.equal(readFileSync(out, 'utf8'), 'w5');
  e.stop();
});

test('a missing key is an error that keeps the old file and names the key, never a value; a default renders', async () => {
  const d = tmp();
  const push = pushSources();
  const { lines, logger } = logCapture();
  const { e, metrics } = engine(
    {
      sources: { kv: { type: 'directory', path: d } },
      destinations: {
        strict: { path: join(d, 'strict'), template: 'pw={{ kv.password }}\nurl={{ kv.url }}\n' },
        lenient: { path: join(d, 'lenient'), template: 'url={{ kv.url | default: "http://localhost" }}' },
      },
    },
    { push, logger },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('kv'));
  push.hosts.get('kv')!.update(
    new Map([
      ['password', 's3cr3t-value'],
      ['url', 'http://db'],
    ]),
    '1',
  );
  await started;
  assert.equal(readFileSync(join(d, 'strict'), 'utf8'), 'pw=s3cr3t-value\nurl=http://db\n');
  push.hosts.get('kv')!.update(new Map([['password', 's3cr3t-value']]), '2');
  await e.idle();
  assert.equal(readFileSync(join(d, 'strict'), 'utf8'), 'pw=s3cr3t-value\nurl=http://db\n', 'old file kept');
  assert.equal(readFileSync(join(d, 'lenient'), 'utf8'), 'url=http://localhost');
  const status = e.status() as {
    destinations: Record<string, { lastError: { code: string; message: string } }>;
  };
  const err = status.destinations.strict!.lastError;
  assert.equal(err.code, 'PILLION_ERR_SYNC_RENDER');
  assert.match(err.message, /missing key.*url.*line 2/);
  assert.equal(
    await metric(metrics, 'pillion_sync_renders_total', { destination: 'strict', result: 'failed' }),
    1,
  );
  assert.ok(!lines.join('').includes('s3cr3t'), 'no value in the log');
  assert.ok(!JSON.stringify(e.status()).includes('s3cr3t'), 'no value in /sync');
  e.stop();
});

test('templates are sandboxed: no file is read, no code is reached', async () => {
  const d = tmp();
  writeFileSync(join(d, 'secret.txt'), 'TOP-SECRET');
  const cases = [
    `{% include '${join(d, 'secret.txt')}' %}`,
    `{% render '${join(d, 'secret.txt')}' %}`,
    `{% layout '${join(d, 'secret.txt')}' %}x`,
  ];
  for (const template of cases) {
    const { e } = engine({
      sources: { l: { type: 'literal', value: { a: 'x' } } },
      destinations: { o: { path: join(d, 'o'), template } },
    });
    const errors = await e.start();
    assert.equal(errors.length, 1, template);
    assert.match(errors[0]!.message, /cannot include, render or read files|template syntax/);
    e.stop();
  }
  // Properties of the prototype chain are not reachable.
  const { e } = engine({
    sources: { l: { type: 'literal', value: { a: 'x' } } },
    destinations: {
      o: {
        path: join(d, 'o2'),
        template: '[{{ l.constructor | default: "none" }}][{{ l.a.constructor.name | default: "none" }}]',
      },
    },
  });
  assert.deepEqual(await e.start(), []);
  assert.equal(readFileSync(join(d, 'o2'), 'utf8'), '[none][none]');
  e.stop();
});

test('the check command refuses a file: it is not written and the old one stays', async () => {
  const d = tmp();
  const push = pushSources();
  const out = join(d, 'conf.json');
  const { e, metrics } = engine(
    {
      sources: { s: { type: 'file', path: join(d, 'in') } },
      destinations: { o: { path: out, source: 's', check: { command: ['grep', '-q', '"ok"'] } } },
    },
    { push },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('s'));
  push.hosts.get('s')!.update(new Map([['', '{"status":"ok"}']]), '1');
  await started;
  assert.equal(readFileSync(out, 'utf8'), '{"status":"ok"}');
  push.hosts.get('s')!.update(new Map([['', '{"status":"broken"}']]), '2');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), '{"status":"ok"}');
  assert.equal(
    await metric(metrics, 'pillion_sync_renders_total', { destination: 'o', result: 'refused' }),
    1,
  );
  const s = e.status() as { destinations: { o: { lastError: { code: string; message: string } } } };
  assert.equal(s.destinations.o.lastError.code, 'PILLION_ERR_SYNC_CHECK');
  assert.match(s.destinations.o.lastError.message, /exited with status 1/);
  e.stop();
});

test('a JSON Schema refuses a file: not written, counted, logged and in /sync with the pointer and never the value', async () => {
  const d = tmp();
  const push = pushSources();
  const { logger, lines } = logCapture();
  const out = join(d, 'conf.yaml');
  const dest = {
    path: out,
    source: 's',
    format: 'yaml',
    check: {
      schema: {
        type: 'object',
        required: ['port', 'token'],
        properties: {
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          token: { type: 'string', minLength: 8 },
        },
      },
    },
  };
  const sync = {
    sources: { s: { type: 'file', path: join(d, 'in'), parse: 'json' } },
    destinations: { o: dest },
  };
  const clock = new FakeClock();
  const cfg = syncSchema.parse(sync);
  const { compileSchemaChecks } = await import('./schema-check.js');
  const metrics = createMetricsRegistry();
  const e = new SyncEngine(cfg, {
    clock,
    random: () => 0.5,
    logger,
    metrics,
    env: {},
    createSource: push.createSource as never,
    schemaChecks: await compileSchemaChecks(cfg.destinations),
  });
  const started = e.start();
  await waitFor(() => push.hosts.get('s'));
  push.hosts.get('s')!.update(new Map([['', '{"port":8080,"token":"s3cret-token-1"}']]), '1');
  await started;
  assert.equal(readFileSync(out, 'utf8'), 'port: 8080\ntoken: s3cret-token-1\n');
  // Valid YAML, wrong by the schema: a port out of range and a token too short.
  push.hosts.get('s')!.update(new Map([['', '{"port":99999,"token":"hunter2"}']]), '2');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'port: 8080\ntoken: s3cret-token-1\n', 'the old file stays');
  assert.equal(
    await metric(metrics, 'pillion_sync_renders_total', { destination: 'o', result: 'refused' }),
    1,
  );
  const s = e.status() as { destinations: { o: { lastError: { code: string; message: string } } } };
  assert.equal(s.destinations.o.lastError.code, 'PILLION_ERR_SYNC_CHECK');
  assert.equal(
    s.destinations.o.lastError.message,
    `schema check refused ${out}: /port must be <= 65535; /token must NOT have fewer than 8 characters`,
  );
  const logged = lines.join('');
  assert.match(logged, /PILLION_ERR_SYNC_CHECK.*\/port must be <= 65535/);
  assert.ok(!logged.includes('hunter2') && !logged.includes('99999'), 'no value in the log');
  assert.ok(!JSON.stringify(e.status()).includes('hunter2'));
  // A valid value again is written, and clears the error.
  push.hosts.get('s')!.update(new Map([['', '{"port":9090,"token":"s3cret-token-2"}']]), '3');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'port: 9090\ntoken: s3cret-token-2\n');
  assert.equal(
    (e.status() as { destinations: { o: { lastError: unknown } } }).destinations.o.lastError,
    null,
  );
  e.stop();
});

test('a JSON Schema check of a JSON file refuses text that is not JSON without quoting it', async () => {
  const d = tmp();
  const out = join(d, 'conf.json');
  writeFileSync(out, '{"ok":true}');
  const sync = {
    sources: { s: { type: 'literal', value: 'password=hunter2' } },
    destinations: { o: { path: out, source: 's', check: { schema: { type: 'object' }, command: ['true'] } } },
  };
  const cfg = syncSchema.parse(sync);
  const { compileSchemaChecks } = await import('./schema-check.js');
  const e = new SyncEngine(cfg, {
    clock: new FakeClock(),
    random: () => 0.5,
    logger: pino({ level: 'silent' }),
    metrics: createMetricsRegistry(),
    env: {},
    schemaChecks: await compileSchemaChecks(cfg.destinations),
  });
  const errors = await e.start();
  assert.deepEqual(
    errors.map((x) => `${x.code} ${x.message}`),
    [`PILLION_ERR_SYNC_CHECK schema check refused ${out}: the rendered file is not valid JSON`],
  );
  assert.equal(readFileSync(out, 'utf8'), '{"ok":true}');
  e.stop();
});

test('secrets: 0400 by default, and neither the log nor /sync shows a value', async () => {
  const d = tmp();
  const { logger, lines } = logCapture();
  const { e } = engine(
    {
      sources: { pw: { type: 'literal', value: 'hunter2-password' } },
      destinations: { pw: { path: join(d, 'db-password'), source: 'pw', secret: true } },
    },
    { logger },
  );
  await e.start();
  assert.equal(statSync(join(d, 'db-password')).mode & 0o777, 0o400);
  assert.equal(readFileSync(join(d, 'db-password'), 'utf8'), 'hunter2-password');
  assert.ok(!lines.join('').includes('hunter2'));
  assert.ok(!JSON.stringify(e.status()).includes('hunter2'));
  e.stop();
});

test('a set of files is swapped in at once: a reader never sees two versions mixed', async () => {
  const d = tmp();
  const push = pushSources();
  const set = join(d, 'set');
  const { e } = engine(
    {
      sources: { v: { type: 'file', path: join(d, 'in') } },
      destinations: {
        both: {
          directory: set,
          files: { 'a.txt': { template: 'a-{{ v }}' }, 'b/b.txt': { template: 'b-{{ v }}' } },
        },
      },
    },
    { push },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('v'));
  push.hosts.get('v')!.update(new Map([['', '0']]), '0');
  await started;
  assert.equal(readFileSync(join(set, 'a.txt'), 'utf8'), 'a-0');
  assert.equal(readFileSync(join(set, 'b', 'b.txt'), 'utf8'), 'b-0');
  // A separate process reads both files through `..data` in a loop while versions are written.
  const reader = spawn(
    process.execPath,
    [
      '-e',
      `const fs=require('fs');const p=process.argv[1];let reads=0,mixed=0;
       process.stdin.on('data',()=>{console.log(JSON.stringify({reads,mixed}));process.exit(0)});
       (function loop(){for(let i=0;i<50;i++){try{const data=fs.realpathSync(p+'/..data');
         const a=fs.readFileSync(data+'/a.txt','utf8').slice(2),b=fs.readFileSync(data+'/b/b.txt','utf8').slice(2);
         reads++;if(a!==b)mixed++;}catch{}}setImmediate(loop)})();
       console.log('ready');`,
      set,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  reader.stdout.on('data', (c) => (out += String(c)));
  await waitFor(() => out.includes('ready'));
  for (let i = 1; i <= 200; i++) {
    push.hosts.get('v')!.update(new Map([['', String(i)]]), String(i));
    await e.idle();
  }
  reader.stdin.write('done\n');
  await waitFor(() => out.includes('reads'));
  const { reads, mixed } = JSON.parse(out.split('\n').find((l) => l.includes('reads'))!) as {
    reads: number;
    mixed: number;
  };
  assert.ok(reads > 0);
  assert.equal(mixed, 0);
  assert.equal(readFileSync(join(set, 'a.txt'), 'utf8'), 'a-200');
  e.stop();
});

test('a source that fails keeps the last files, and after staleAfter turns readiness and the metric to stale', async () => {
  const d = tmp();
  const push = pushSources();
  const out = join(d, 'out');
  const { e, clock, metrics } = engine(
    {
      sources: { s: { type: 'http', url: 'http://127.0.0.1:1/', staleAfter: '1m' } },
      destinations: { o: { path: out, source: 's' } },
    },
    { push },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('s'));
  const host = push.hosts.get('s')!;
  host.update(new Map([['', 'good']]), '1');
  await started;
  host.fail(new PillionError('PILLION_ERR_SYNC_SOURCE', 'http source s: http://127.0.0.1:1 ECONNREFUSED'));
  await clock.advance(59_000);
  assert.equal(e.readiness().ready, true, 'failing, not yet stale');
  assert.match(e.readiness().reason!, /failing/);
  await clock.advance(1_000);
  assert.deepEqual(e.readiness(), { ready: false, reason: 'sync source stale: s' });
  assert.equal(await metric(metrics, 'pillion_sync_source_stale', { source: 's' }), 1);
  assert.equal(readFileSync(out, 'utf8'), 'good', 'never emptied');
  host.contact('1');
  assert.equal(e.readiness().ready, true);
  assert.equal(await metric(metrics, 'pillion_sync_source_stale', { source: 's' }), 0);
  e.stop();
});

test('a value that does not parse as its source says is an error of the source; the last value stays', async () => {
  const d = tmp();
  const push = pushSources();
  const out = join(d, 'out.yaml');
  const { e } = engine(
    {
      sources: { s: { type: 'file', path: join(d, 'in'), parse: 'json' } },
      destinations: { o: { path: out, source: 's', format: 'yaml' } },
    },
    { push },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('s'));
  push.hosts.get('s')!.update(new Map([['', '{"a":1}']]), '1');
  await started;
  assert.equal(readFileSync(out, 'utf8'), 'a: 1\n');
  push.hosts.get('s')!.update(new Map([['', '{"a": secret-garbage']]), '2');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'a: 1\n');
  const s = e.status() as { sources: { s: { state: string; lastError: { message: string } } } };
  assert.equal(s.sources.s.state, 'failing');
  assert.equal(s.sources.s.lastError.message, 'source s: its value is not valid JSON');
  e.stop();
});

test('roll back: the app turns unhealthy after a change, the previous file is back, the app is told again, and the bad version is held', async () => {
  const d = tmp();
  const push = pushSources();
  const out = join(d, 'config.json');
  const told = join(d, 'told');
  const health = new HealthSignal(true);
  const { e, clock, metrics } = engine(
    {
      sources: { s: { type: 'file', path: join(d, 'in') } },
      destinations: { o: { path: out, source: 's' } },
      notify: { note: { type: 'command', command: ['sh', '-c', `echo x >> ${told}`] } },
      rollback: { window: '30s' },
    },
    { push, health },
  );
  const started = e.start();
  await waitFor(() => push.hosts.get('s'));
  const host = push.hosts.get('s')!;
  host.update(new Map([['', 'good']]), 'v-good');
  await started;
  const toldCount = () => (readFileSync(told, 'utf8').match(/x/g) ?? []).length;
  assert.equal(toldCount(), 1);
  host.update(new Map([['', 'bad']]), 'v-bad');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'bad');
  assert.equal(toldCount(), 2);
  await clock.advance(10_000);
  health.set(false, 'connection refused');
  await waitFor(() => readFileSync(out, 'utf8') === 'good', { what: 'the good file back' });
  await waitFor(() => toldCount() === 3, { what: 'the app told again' });
  assert.equal(await metric(metrics, 'pillion_sync_rollbacks_total', { destination: 'o' }), 1);
  const s = (
    e.status() as {
      destinations: { o: { current: { version: string }; failed: { version: string; reason: string } } };
    }
  ).destinations.o;
  assert.equal(s.failed.reason, 'connection refused');
  health.set(true);
  // The same bad value again (a re-read of the unchanged source): held, not applied.
  host.update(new Map([['', 'bad']]), 'v-bad');
  host.update(new Map([['', 'bad']]), 'v-bad');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'good');
  // A new value at the source is applied; a window that passes keeps it.
  host.update(new Map([['', 'fixed']]), 'v-fixed');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'fixed');
  await clock.advance(30_000);
  health.set(false, 'later trouble');
  await e.idle();
  assert.equal(readFileSync(out, 'utf8'), 'fixed', 'outside the window nothing is rolled back');
  e.stop();
});
