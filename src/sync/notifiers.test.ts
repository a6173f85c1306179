import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { FakeClock, systemClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { syncSchema } from './config.js';
import { ExecSupervisor } from './exec.js';
import { createSender, Notifier } from './notifiers/index.js';
import { pidsByName } from './notifiers/signal.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'pillion-notify-'));
  dirs.push(d);
  return d;
}

/** A script that counts the SIGHUPs (and SIGUSR1s) it gets into a file and says when it is ready. */
function counterScript(dir: string): string {
  const script = join(dir, 'hup-counter.cjs');
  writeFileSync(
    script,
    `const fs = require('fs'); const out = process.argv[2]; let hup = 0, usr1 = 0;
     const save = () => fs.writeFileSync(out, JSON.stringify({ hup, usr1, pid: process.pid }));
     process.on('SIGHUP', () => { hup++; save(); });
     process.on('SIGUSR1', () => { usr1++; save(); });
     save(); setInterval(() => {}, 1000);`,
  );
  return script;
}

function counts(file: string): { hup: number; usr1: number; pid: number } | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { hup: number; usr1: number; pid: number };
  } catch {
    return undefined;
  }
}

function notifierConfig(n: unknown) {
  return syncSchema.parse({
    sources: { s: { type: 'literal', value: 'x' } },
    destinations: { d: { path: '/tmp/x', source: 's' } },
    notify: { n },
  }).notify.n!;
}

test('signal notifier: a real process found by its pid file, and by its name, counts each SIGHUP', async () => {
  const d = tmp();
  const out = join(d, 'counts.json');
  const child = spawn(process.execPath, [counterScript(d), out], { stdio: 'ignore' });
  children.push(child);
  await waitFor(() => counts(out));
  writeFileSync(join(d, 'app.pid'), `${child.pid}\n`);
  const byPid = createSender('n', notifierConfig({ type: 'signal', pidFile: join(d, 'app.pid') }));
  await byPid.send();
  await waitFor(() => counts(out)?.hup === 1, { what: 'one SIGHUP' });
  assert.deepEqual(pidsByName('hup-counter.cjs'), [child.pid]);
  const byName = createSender(
    'n',
    notifierConfig({ type: 'signal', process: 'hup-counter.cjs', signal: 'SIGUSR1' }),
  );
  await byName.send();
  await waitFor(() => counts(out)?.usr1 === 1, { what: 'one SIGUSR1' });
  // Nothing to signal is an error that says so.
  const none = createSender('n', notifierConfig({ type: 'signal', process: 'no-such-program-here' }));
  await assert.rejects(none.send(), {
    code: 'PILLION_ERR_SYNC_NOTIFY',
    message: /no process named "no-such-program-here"/,
  });
  const noFile = createSender('n', notifierConfig({ type: 'signal', pidFile: join(d, 'missing.pid') }));
  await assert.rejects(noFile.send(), { code: 'PILLION_ERR_SYNC_NOTIFY', message: /cannot read pid file/ });
  child.kill('SIGKILL');
});

test('container notifier: a container that is not running, or not in the pod, is an error that says so; without a pod it cannot be made', async () => {
  const d = tmp();
  const container = (name: string, state: string, extra: object = {}) => ({
    name,
    type: 'main',
    state,
    ready: false,
    started: false,
    restartCount: 0,
    ...extra,
  });
  writeFileSync(
    join(d, 'status.json'),
    JSON.stringify({
      name: 'web',
      namespace: 'default',
      containers: [
        container('app', 'waiting', { reason: 'CrashLoopBackOff' }),
        // A pid whose recorded start time is not that of the process holding it now: gone.
        container('worker', 'running', { pid: process.pid, pidStart: 'not-this-process' }),
        container('pillion', 'running'),
      ],
    }),
  );
  const env = { PILLION_POD_DIR: d };
  const send = (name: string) =>
    createSender('n', notifierConfig({ type: 'signal', container: name }), env).send();
  await assert.rejects(send('app'), {
    code: 'PILLION_ERR_SYNC_NOTIFY',
    message: 'cannot send SIGHUP: container "app" of pod web is not running (waiting: CrashLoopBackOff)',
  });
  await assert.rejects(send('worker'), {
    message: /container "worker" of pod web is not running \(running\)/,
  });
  await assert.rejects(send('ap'), {
    message:
      'cannot send SIGHUP: pod web has no container "ap" (did you mean "app"? containers: app, worker, pillion)',
  });
  await assert.rejects(
    createSender('n', notifierConfig({ type: 'signal', container: 'app' }), {
      PILLION_POD_DIR: join(d, 'gone'),
    }).send(),
    { message: /cannot read the pod's status in .*gone \(ENOENT\)/ },
  );
  assert.throws(() => createSender('n', notifierConfig({ type: 'signal', container: 'app' }), {}), {
    code: 'PILLION_ERR_SYNC_NOTIFY',
    message: /container needs pillion pod \(PILLION_POD_DIR is not set\)/,
  });
});

test('HTTP notifier: POST /reload, 2xx is success, anything else an error with the status', async () => {
  const seen: string[] = [];
  let status = 204;
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers['x-token']}`);
    res.statusCode = status;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/reload`;
  const sender = createSender('n', notifierConfig({ type: 'http', url, headers: { 'x-token': 'abc' } }));
  await sender.send();
  assert.deepEqual(seen, ['POST /reload abc']);
  status = 500;
  await assert.rejects(sender.send(), { code: 'PILLION_ERR_SYNC_NOTIFY', message: /answered 500/ });
  sender.close?.();
  server.close();
});

test('command notifier: exit 0 is success; a failure or a timeout is an error', async () => {
  const d = tmp();
  const ok = createSender('n', notifierConfig({ type: 'command', command: ['touch', join(d, 'told')] }));
  await ok.send();
  assert.ok(existsSync(join(d, 'told')));
  const fail = createSender('n', notifierConfig({ type: 'command', command: ['sh', '-c', 'exit 3'] }));
  await assert.rejects(fail.send(), { message: /exited with status 3/ });
  const slow = createSender(
    'n',
    notifierConfig({ type: 'command', command: ['sleep', '30'], timeout: '100ms' }),
  );
  await assert.rejects(slow.send(), { message: /did not finish within 100 ms/ });
});

test('debounce and splay wait on the injected clock; calls while waiting are told once', async () => {
  const clock = new FakeClock();
  let sent = 0;
  const n = new Notifier(
    'n',
    { send: async () => void sent++ },
    { clock, random: () => 1, debounce: 1000, splay: 500 },
  );
  const a = n.notify();
  const b = n.notify();
  await clock.advance(1499);
  assert.equal(sent, 0);
  await clock.advance(1);
  await Promise.all([a, b]);
  assert.equal(sent, 1);
});

test('exec mode: starts the app, passes signals on, signals it on a change, restarts it with back-off when it exits', async () => {
  const d = tmp();
  const out = join(d, 'counts.json');
  const signals = new EventEmitter();
  const clock = new FakeClock();
  const cfg = syncSchema.parse({
    sources: { s: { type: 'literal', value: 'x' } },
    destinations: { d: { path: '/tmp/x', source: 's' } },
    exec: { command: [process.execPath, counterScript(d), out], forwardSignals: ['SIGUSR1'] },
  }).exec!;
  const exec = new ExecSupervisor(cfg, {
    clock,
    logger: pino({ level: 'silent' }),
    env: process.env,
    signals,
  });
  await exec.send(); // before start: nothing to tell, the app starts with the files as they are
  exec.start();
  const first = await waitFor(() => counts(out));
  assert.equal(first.pid, exec.pid);
  signals.emit('SIGUSR1');
  await waitFor(() => counts(out)?.usr1 === 1, { what: 'SIGUSR1 passed on' });
  await exec.send();
  await waitFor(() => counts(out)?.hup === 1, { what: 'SIGHUP on a change' });
  // The app dies: restarted after the kubelet's first back-off (10 s), on the fake clock.
  process.kill(first.pid, 'SIGKILL');
  await waitFor(() => exec.status().lastExit === 'signal SIGKILL');
  assert.equal(exec.pid, undefined);
  await clock.advance(9_999);
  assert.equal(exec.pid, undefined);
  await clock.advance(1);
  await waitFor(() => counts(out)?.pid !== first.pid && exec.pid !== undefined, {
    what: 'a new app process',
  });
  assert.equal(exec.status().restarts, 1);
  await exec.stop();
  assert.equal(exec.pid, undefined);
  assert.equal(signals.listenerCount('SIGUSR1'), 0);
});

test('exec mode onChange: restart stops the app (SIGTERM) and starts it again', async () => {
  const d = tmp();
  const out = join(d, 'counts.json');
  const cfg = syncSchema.parse({
    sources: { s: { type: 'literal', value: 'x' } },
    destinations: { d: { path: '/tmp/x', source: 's' } },
    exec: { command: [process.execPath, counterScript(d), out], onChange: 'restart' },
  }).exec!;
  const exec = new ExecSupervisor(cfg, {
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    env: process.env,
    signals: new EventEmitter(),
  });
  exec.start();
  const first = await waitFor(() => counts(out));
  await exec.send();
  const second = await waitFor(() => (counts(out)?.pid !== first.pid ? counts(out) : undefined));
  assert.equal(second.pid, exec.pid);
  assert.equal(exec.status().restarts, 0, 'a restart on change is not an exit by itself');
  await exec.stop();
});
