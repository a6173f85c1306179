// The adapter's recipe in docs/proxy.md, run as it is written: `pillion run` with the documented
// YAML (only its two ports changed to free ones) in front of a real legacy app that speaks
// {action, payload}, and a client of the modern {method, data} API.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import { freePort, startBackend } from '../test-support.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** The first yaml block after the recipe's heading in docs/proxy.md. */
function recipe(): string {
  const doc = readFileSync(join(root, 'docs', 'proxy.md'), 'utf8');
  const at = doc.indexOf('### Recipe: `{method, data}`');
  assert.ok(at !== -1, 'the recipe is in docs/proxy.md');
  const m = /```yaml\n([\s\S]*?)```/.exec(doc.slice(at));
  assert.ok(m, 'the recipe has a yaml block');
  return m[1]!;
}

function post(
  port: number,
  path: string,
  body: string,
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body: text }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('the documented recipe, run by pillion in front of a legacy {action, payload} app', async () => {
  // The legacy app: POST /orders with {action, payload}; answers {action: "created", payload + id}.
  const app = await startBackend((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const got = JSON.parse(text) as { action?: string; payload?: Record<string, unknown> };
      if (req.url !== '/orders' || got.action !== 'create') {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ action: 'rejected', payload: { url: req.url, got } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ action: 'created', payload: { ...got.payload, id: 7 } }));
    });
  });
  const port = await freePort();
  const text = recipe()
    .replace('app: { port: 8080 }', `app: { port: ${app.port}, health: { protocol: tcp } }`)
    .replace('address: ":8000"', `address: "127.0.0.1:${port}"`);
  assert.ok(text.includes(`127.0.0.1:${port}`) && text.includes(`port: ${app.port}`), 'the ports were found');
  const dir = mkdtempSync(join(tmpdir(), 'pillion-recipe-'));
  const config = join(dir, 'pillion.yaml');
  writeFileSync(config, `admin: { listen: "127.0.0.1:0" }\n${text}`);
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'run', '-c', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise((resolve) => child.on('close', resolve));
  try {
    const modern = JSON.stringify({ method: 'create', data: { sku: 'tea', qty: 2 } });
    const r = await waitFor(
      async () => {
        const a = await post(port, '/v2/orders', modern);
        return a.status === 503 ? undefined : a; // the readiness gate, until the app's check passes
      },
      { what: `pillion to serve the recipe (output: ${out})`, timeoutMs: 20_000 },
    );
    assert.equal(r.status, 201, r.body);
    assert.equal(r.type, 'application/json');
    assert.deepEqual(JSON.parse(r.body), { method: 'created', data: { sku: 'tea', qty: 2, id: 7 } });
    // The body docs/proxy.md shows for its curl.
    assert.ok(readFileSync(join(root, 'docs', 'proxy.md'), 'utf8').includes(`\n${r.body}\n`), r.body);
    const seen = app.requests.at(-1)!;
    assert.equal(seen.url, '/orders');
    assert.equal(seen.headers['x-api-version'], '2');
  } finally {
    child.kill('SIGTERM');
    await exited;
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
