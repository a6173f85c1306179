import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';
import { startRuntimeOn } from '../runtime/test-support.js';

const cleanups: (() => unknown)[] = [];
after(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/**
 * A legacy app in miniature: reads config.json at start and on POST /reload, and is healthy only
 * while the config it read has a port.
 */
async function legacyApp(configFile: string) {
  let config: { port?: number } = {};
  let reloads = 0;
  const read = () => {
    try {
      config = JSON.parse(readFileSync(configFile, 'utf8')) as { port?: number };
    } catch {
      config = {};
    }
  };
  const server = createServer((req, res) => {
    if (req.url === '/reload') {
      reloads++;
      read();
      return res.end('reloaded');
    }
    res.statusCode = typeof config.port === 'number' ? 200 : 500;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  return { port: (server.address() as AddressInfo).port, reloads: () => reloads, read };
}

function write(file: string, text: string) {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

test('pillion run with sync: the file follows its source, the app is told, a change that breaks the app is rolled back and shown in /sync and /metrics', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-syncrt-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, 'input.json');
  const output = join(dir, 'app', 'config.json');
  write(input, '{"port": 8080, "greeting": "hello"}');
  const app = await legacyApp(output);
  const configFile = join(dir, 'pillion.yaml');
  writeFileSync(
    configFile,
    [
      'admin: { listen: 127.0.0.1:0 }',
      'app:',
      `  port: ${app.port}`,
      '  health: { path: /health, interval: 100ms, unhealthyThreshold: 1 }',
      'sync:',
      '  sources:',
      `    orders: { type: file, path: ${input}, parse: json, poll: 1h }`,
      '  destinations:',
      `    config: { path: ${output}, source: orders, format: json }`,
      '  notify:',
      `    app: { type: http, url: "http://127.0.0.1:${app.port}/reload" }`,
      '  rollback: { window: 1m }',
      '',
    ].join('\n'),
  );
  const rt = await startRuntimeOn(configFile);
  cleanups.push(() => rt.shutdown('test end'));
  const base = `http://127.0.0.1:${rt.adminAddress!.port}`;
  const sync = async () =>
    (await (await fetch(`${base}/sync`)).json()) as {
      sources: Record<string, { state: string; version: string }>;
      destinations: Record<
        string,
        {
          current: { version: string } | null;
          previous: unknown;
          failed: { version: string; reason: string } | null;
        }
      >;
    };

  assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), { port: 8080, greeting: 'hello' });
  await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { what: 'ready' });

  write(input, '{"port": 8080, "greeting": "bonjour"}');
  await waitFor(() => readFileSync(output, 'utf8').includes('bonjour'), { what: 'the change written' });
  await waitFor(() => app.reloads() >= 1, { what: 'the app told' });
  const good = (await sync()).destinations.config!.current!.version;

  // A value the app cannot live with: written, told, the app turns unhealthy, the previous file is back.
  write(input, '{"greeting": "no port"}');
  await waitFor(() => (readFileSync(output, 'utf8').includes('no port') ? true : app.reloads() >= 3), {
    what: 'the bad change written',
  });
  await waitFor(async () => (await sync()).destinations.config!.failed !== null, {
    what: 'the rollback',
    timeoutMs: 20_000,
  });
  assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), { port: 8080, greeting: 'bonjour' });
  const s = await sync();
  assert.equal(s.destinations.config!.current!.version, good);
  assert.match(s.destinations.config!.failed!.reason, /500/);
  await waitFor(() => app.reloads() >= 3, { what: 'the app told again' });
  app.read();
  await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { what: 'healthy again' });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /pillion_sync_rollbacks_total\{destination="config"\} 1/);
  assert.match(metrics, /pillion_sync_renders_total\{destination="config",result="written"\} 3/);

  // A reload that adds a destination applies in place: the new file appears, and the rolled-back
  // version, still at the source, stays held.
  const before = readFileSync(output, 'utf8');
  const second = join(dir, 'app', 'greeting.txt');
  writeFileSync(
    configFile,
    readFileSync(configFile, 'utf8').replace(
      '  notify:',
      `    greeting: { path: ${second}, template: "{{ orders.greeting }}" }\n  notify:`,
    ),
  );
  const outcome = await rt.reload('test');
  assert.ok(
    outcome.ok && outcome.changed.includes('sync') && !outcome.restarted.includes('sync'),
    JSON.stringify(outcome),
  );
  assert.equal(readFileSync(second, 'utf8'), 'no port');
  assert.equal(readFileSync(output, 'utf8'), before);
  assert.equal((await sync()).destinations.config!.failed!.version, s.destinations.config!.failed!.version);
});

test('GET /sync answers 404 when no sync section is configured', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-syncrt-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'pillion.yaml');
  writeFileSync(configFile, 'admin: { listen: 127.0.0.1:0 }\n');
  const rt = await startRuntimeOn(configFile);
  cleanups.push(() => rt.shutdown('test end'));
  const res = await fetch(`http://127.0.0.1:${rt.adminAddress!.port}/sync`);
  assert.equal(res.status, 404);
  assert.match(await res.text(), /the sync role is not configured/);
});
