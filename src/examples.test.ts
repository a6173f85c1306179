// The demo without a pod is the same pair as the pod: examples/legacy-orders/pillion.yaml is what
// the pod's ConfigMap carries, and `npm run demo:local` (local.mjs) runs the app and the sidecar
// from it as plain processes, from the repository root, with the same HTTPS, headers, private
// /internal and shipped, redacted log file.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { formatIssue } from './config/index.js';
import { waitFor } from './lib/wait-for.js';
import { expand } from './pod/env.js';
import { parsePillionConfig } from './roles.js';
import { freePort } from './lib/free-port.js';

const root = new URL('../', import.meta.url).pathname;
const example = join(root, 'examples/legacy-orders');

test("the pod's sidecar ConfigMap is examples/legacy-orders/pillion.yaml, and it is valid with the pod's paths and without", async () => {
  const pod = parseAllDocuments(readFileSync(join(example, 'pod.yaml'), 'utf8')).map((d) => d.toJS());
  const cm = pod.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'orders-sidecar');
  const file = readFileSync(join(example, 'pillion.yaml'), 'utf8');
  assert.equal(cm.data['pillion.yaml'], file, 'pod.yaml is stale: run `npm run docs`');
  const podSpec = pod.find((d) => d.kind === 'Pod');
  const sidecar = podSpec.spec.initContainers.find((c: { name: string }) => c.name === 'pillion');
  const podEnv = Object.fromEntries(
    sidecar.env.filter((e: { value?: string }) => e.value !== undefined).map((e: any) => [e.name, e.value]),
  );
  assert.equal(podEnv.TLS_DIR, '/etc/pillion-tls');
  for (const env of [{}, podEnv]) {
    const r = await parsePillionConfig(file, 'pillion.yaml', env);
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  }
  const inPod = await parsePillionConfig(file, 'pillion.yaml', podEnv);
  assert.ok(inPod.ok);
  assert.equal(inPod.config.logs?.dataDir, '/var/lib/pillion/logs');
  assert.equal(inPod.config.inbound?.listeners[0]!.tls?.certificates[0]!.key, '/etc/pillion-tls/tls.key');
});

function https(
  port: number,
  ca: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca,
        servername: 'localhost',
        headers: { host: 'localhost', ...headers },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const demoDir = mkdtempSync(join(tmpdir(), 'pillion-demo-local-'));
after(() => rmSync(demoDir, { recursive: true, force: true }));

test('regression: without a pod, npm run demo:local runs the same pair from the repository root', async () => {
  const started = Date.now();
  const [app, httpsPort, admin, metrics, outbound, inventory, flaky] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const child = spawn(process.execPath, [join(example, 'local.mjs')], {
    cwd: root,
    env: {
      ...process.env,
      PILLION_DEMO_DIR: demoDir,
      APP_PORT: String(app),
      HTTPS_PORT: String(httpsPort),
      ADMIN_PORT: String(admin),
      METRICS_PORT: String(metrics),
      OUTBOUND_PORT: String(outbound),
      INVENTORY_PORT: String(inventory),
      INVENTORY_FLAKY_PORT: String(flaky),
      // The flaky replica fails every stock request here, so what the sidecar does is exact.
      INVENTORY_FAIL_PERCENT: '100',
      STARTUP_DELAY_MS: '0',
      LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined))?.status === 200,
      // Four processes start on what may be a busy machine: a generous bound, not a measure.
      { what: `the sidecar ready once the app is healthy\n${output}`, timeoutMs: 60_000 },
    );
    const ca = readFileSync(join(demoDir, 'tls', 'ca.pem'), 'utf8');

    const order = await https(httpsPort, ca, 'POST', '/orders', '{"item":"book","amount":20}');
    assert.equal(order.status, 201, order.body);
    // 10% off: the app found its config.json beside it, though it runs from the repository root.
    assert.deepEqual(JSON.parse(order.body), { id: 1, item: 'book', amount: 18, currency: 'EUR' });
    assert.ok(order.headers['x-request-id']);
    assert.equal(order.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal((await https(httpsPort, ca, 'GET', '/internal/metrics')).status, 404);
    // ...but the sidecar scrapes them: the app's JSON counters as Prometheus metrics on :15020.
    const scraped = await waitFor(
      async () => {
        const t = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
        return /^orders_created_total\{/m.test(t) ? t : undefined;
      },
      { what: "the app's counters on the metrics listener", timeoutMs: 30_000 },
    );
    assert.match(scraped, /^orders_requests_total\{service="orders",version="1\.0\.0",host="[^"]+"\} \d+$/m);
    assert.match(scraped, /^pillion_app_scrape_up\{target="orders"\} 1$/m);

    // The app asks the inventory for stock through the sidecar's outbound listener, once per call:
    // the flaky replica's 503s are tried again on the other, until it is ejected.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`http://127.0.0.1:${app}/stock/book`);
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { item: 'book', available: 12, replica: 'inventory-a' });
    }
    const clusters = (await (await fetch(`http://127.0.0.1:${admin}/clusters?format=json`)).json()) as {
      clusters: {
        section: string;
        name: string;
        stats: Record<string, number>;
        endpoints: { address: string; health: string }[];
      }[];
    };
    const inv = clusters.clusters.find((c) => c.section === 'outbound' && c.name === 'inventory')!;
    assert.equal(inv.stats.rq_retry, 3, 'one retry per 503, three 503s in a row to eject');
    assert.equal(inv.stats.ejections, 1);
    assert.equal(inv.stats.rq_2xx, 10);
    assert.equal(inv.endpoints.find((e) => e.address === `127.0.0.1:${flaky}`)!.health, 'ejected');
    assert.equal(inv.endpoints.find((e) => e.address === `127.0.0.1:${inventory}`)!.health, 'healthy');
    const text = await (await fetch(`http://127.0.0.1:${admin}/clusters`)).text();
    assert.match(text, new RegExp(`^outbound/inventory::127\\.0\\.0\\.1:${flaky}::health::ejected$`, 'm'));

    // Who the caller is comes from the demo issuer's token; /admin only for role admin.
    const { mintDemoToken } = (await import(join(example, 'demo-issuer.mjs'))) as {
      mintDemoToken: (o: { sub: string; roles: string }) => Promise<string>;
    };
    const bearer = async (sub: string, roles: string) => ({
      authorization: `Bearer ${await mintDemoToken({ sub, roles })}`,
    });
    const adminPage = await https(
      httpsPort,
      ca,
      'GET',
      '/admin',
      undefined,
      await bearer('alice', 'admin,ops'),
    );
    assert.equal(adminPage.status, 200, adminPage.body);
    assert.deepEqual(JSON.parse(adminPage.body), {
      page: 'admin',
      user: 'alice',
      roles: ['admin', 'ops'],
      orders: 1,
    });
    assert.equal(
      (await https(httpsPort, ca, 'GET', '/admin', undefined, await bearer('bob', 'viewer'))).status,
      403,
    );
    assert.equal(
      (await https(httpsPort, ca, 'GET', '/admin', undefined, { 'x-user-roles': 'admin' })).status,
      403,
    );
    const forged = await https(httpsPort, ca, 'GET', '/orders', undefined, {
      authorization: 'Bearer e30.e30.e30',
    });
    assert.equal(forged.status, 401);
    assert.equal(forged.headers['www-authenticate'], 'Bearer error="invalid_token"');

    assert.equal((await https(httpsPort, ca, 'POST', '/orders', 'call ann@example.com')).status, 400);
    const shipped = join(demoDir, 'logs', 'orders.ndjson');
    const line = await waitFor(
      () =>
        existsSync(shipped)
          ? readFileSync(shipped, 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((l) => JSON.parse(l) as Record<string, unknown>)
              .find((e) => String(e.msg).startsWith('bad order payload'))
          : undefined,
      { what: 'the bad order shipped', timeoutMs: 30_000 },
    );
    assert.equal(line.level, 'ERROR');
    assert.equal(line.service, 'orders');
    assert.doesNotMatch(String(line.msg), /ann@example\.com/);
    assert.ok(line.timestamp && line.host);
    // A burst from one client: the first 20 pass, the rest get 429 with Retry-After.
    const burst = await Promise.all(Array.from({ length: 40 }, () => https(httpsPort, ca, 'GET', '/orders')));
    const limited = burst.filter((r) => r.status === 429);
    assert.ok(limited.length >= 10, `429s in the burst: ${limited.length}`);
    assert.ok(burst.every((r) => r.status === 200 || r.status === 429));
    assert.ok(Number(limited[0]!.headers['retry-after']) >= 1);

    // The app's config.json follows the settings file (sync), and the app has it after its SIGHUP.
    const settings = join(demoDir, 'settings', 'orders.json');
    const write = (text: string) => {
      writeFileSync(`${settings}.tmp`, text);
      renameSync(`${settings}.tmp`, settings);
    };
    const order25 = async () =>
      JSON.parse((await https(httpsPort, ca, 'POST', '/orders', '{"item":"pen","amount":20}')).body) as {
        amount: number;
      };
    write('{ "currency": "EUR", "discountPercent": 25 }');
    await waitFor(async () => (await order25()).amount === 15, {
      what: `the new discount\n${output}`,
      timeoutMs: 30_000,
    });
    // A discount the app cannot live with: it stops serving, and the sidecar puts 25 back.
    write('{ "currency": "EUR", "discountPercent": 150 }');
    const sync = async () =>
      (await (await fetch(`http://127.0.0.1:${admin}/sync`)).json()) as {
        destinations: { config: { failed: { reason: string } | null } };
      };
    await waitFor(async () => (await sync()).destinations.config.failed, {
      what: `the roll back\n${output}`,
      timeoutMs: 30_000,
    });
    assert.deepEqual(JSON.parse(readFileSync(join(demoDir, 'app-config', 'config.json'), 'utf8')), {
      currency: 'EUR',
      discountPercent: 25,
    });
    await waitFor(async () => (await order25().catch(() => ({ amount: 0 }))).amount === 15, {
      what: `the app serving again\n${output}`,
      timeoutMs: 30_000,
    });
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, output);
  // Health checks do not fill the app's log (or the shipped file) with a line a second: the only
  // requests to /internal/metrics are the metrics scrapes, one per 15 s.
  const scrapes = output.match(/orders +\| .*GET \/internal\/metrics/g) ?? [];
  assert.ok(scrapes.length >= 1 && scrapes.length <= 1 + (Date.now() - started) / 15_000, scrapes.join('\n'));
  assert.match(output, /orders {2}\| .*SIGTERM: closing/);
  assert.match(output, /pillion \| .*pillion stopped/);
  // The retried tries reached the good replica as second attempts.
  assert.match(output, /inv-b +\| .*GET \/stock\/book 503 attempt=1/);
  assert.match(output, /inv-a +\| .*GET \/stock\/book 200 attempt=2/);
});

test("regression: the demo pod's orders container writes its pid (the kubelet reads $$ in a command as a literal $)", () => {
  const docs = parseAllDocuments(readFileSync(join(root, 'examples', 'legacy-orders', 'pod.yaml'), 'utf8'));
  const pod = docs.map((d) => d.toJS()).find((d) => d?.kind === 'Pod');
  const orders = pod.spec.containers.find((c: { name: string }) => c.name === 'orders');
  const script = expand(orders.command[2], {});
  // Run what the shell would, up to the exec, printing what it writes into the pid file.
  const echo = script.slice(0, script.indexOf(' && exec ')).replace(/>\s*\S+$/, '');
  const out = spawnSync('sh', ['-c', echo], { encoding: 'utf8' });
  assert.match(out.stdout.trim(), /^\d+$/, `the pid file would hold ${JSON.stringify(out.stdout)}`);
});

test('pillion inject -f examples/legacy-orders/deployment.yaml | pillion pod up -: the injected Deployment runs here as the cluster would run it', async () => {
  const [app, httpsPort, admin, probe, outbound] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const dir = mkdtempSync(join(tmpdir(), 'pillion-inject-roundtrip-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // `pillion` on the PATH, as the injected container names it (the image puts it there).
  mkdirSync(join(dir, 'bin'));
  symlinkSync(join(root, 'dist', 'bin', 'pillion.js'), join(dir, 'bin', 'pillion'));
  // Free ports instead of the example's: the app's, and the sidecar config's through its env.
  const deployment = readFileSync(join(example, 'deployment.yaml'), 'utf8')
    .replaceAll("value: '8080'", `value: '${app}'`)
    .replace('tcpSocket: { port: 8080 }', `tcpSocket: { port: ${app} }`)
    .replace(
      '- { name: TLS_DIR, value: /etc/pillion-tls }',
      `- { name: TLS_DIR, value: /etc/pillion-tls }
            - { name: APP_PORT, value: '${app}' }
            - { name: HTTPS_PORT, value: '${httpsPort}' }
            - { name: ADMIN_PORT, value: '${admin}' }
            - { name: OUTBOUND_PORT, value: '${outbound}' }`,
    );
  assert.notEqual(deployment, readFileSync(join(example, 'deployment.yaml'), 'utf8'));
  writeFileSync(join(dir, 'deployment.yaml'), deployment);
  writeFileSync(join(dir, 'injector.yaml'), `sidecar:\n  ports: { probe: ${probe} }\n`);

  const env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, STARTUP_DELAY_MS: '0' };
  const inject = spawn(
    process.execPath,
    [
      join(root, 'dist/cli/main.js'),
      'inject',
      '-f',
      join(dir, 'deployment.yaml'),
      '-c',
      'pillion.yaml',
      '--injector-config',
      join(dir, 'injector.yaml'),
    ],
    { cwd: example, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const pod = spawn(
    process.execPath,
    [join(root, 'dist/cli/main.js'), 'pod', 'up', '-', '--state-dir', join(dir, 'state')],
    {
      cwd: example,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  inject.stdout.pipe(pod.stdin);
  let output = '';
  for (const s of [inject.stderr, pod.stdout, pod.stderr])
    s.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<number | null>((resolve) => pod.on('exit', (code) => resolve(code)));
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined))?.status === 200,
      { what: `the injected sidecar ready\n${output}`, timeoutMs: 60_000 },
    );
    const ca = readFileSync(
      join(dir, 'state', 'run', readdirSync(join(dir, 'state', 'run'))[0]!, 'volumes', 'tls', 'ca.pem'),
      'utf8',
    );
    const order = await https(httpsPort, ca, 'POST', '/orders', '{"item":"book","amount":20}');
    assert.equal(order.status, 201, order.body);
    // The sidecar's sync rendered the settings into the app's config.json before the app started.
    assert.deepEqual(JSON.parse(order.body), { id: 1, item: 'book', amount: 18, currency: 'EUR' });
    assert.ok(order.headers['x-request-id']);
    assert.match(output, /deployment\/legacy-orders: injected \(native sidecar\)/);
    // The kubelet's order: the init container, then the sidecar (started: its probe passed), then the app.
    const at = (re: RegExp) => output.search(re);
    assert.ok(at(/make-cert \| wrote/) < at(/started sidecar container pillion/), output);
    assert.ok(at(/started sidecar container pillion/) < at(/orders +\| .*listening/), output);
    await waitFor(() => /pillion +\| .*"path":"\/orders".*"response_code":201/.test(output), {
      what: "the sidecar's access log line",
      timeoutMs: 10_000,
    });
  } finally {
    pod.kill('SIGTERM');
  }
  assert.equal(await exited, 130, output);
});
