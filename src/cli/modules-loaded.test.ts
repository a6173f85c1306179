// Which code `pillion run` loads for a config: a role whose section is absent must cost nothing,
// so neither its modules nor its dependencies may be loaded. A module loader hook (registered
// with --import) records every ES module the process loads; packages are told by their entry.
// Both ways of running it are checked: the modules tsc wrote (dist/cli/main.js), and the bundled
// bin (dist/bin/pillion.js), whose chunks are named after the module a dynamic import() loads.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(root, 'dist');
const dir = mkdtempSync(join(tmpdir(), 'pillion-modules-loaded-'));
const app = createServer((_req, res) => res.end('ok\n'));
let appPort = 0;

before(async () => {
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.PILLION_TEST_LOADED, url + '\\n');
  return next(url, context);
}
`,
  );
  writeFileSync(
    join(dir, 'record.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${join(dir, 'hooks.mjs')}`).href)});\n`,
  );
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  app.on('connection', (s) => s.unref());
  appPort = (app.address() as AddressInfo).port;
});
after(() => {
  app.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Loaded {
  /** Files of dist/, relative to it (cli/main.js). */
  files: string[];
  /** Node's built-in modules imported as ES modules (node:http2). */
  builtins: string[];
  /** Packages of node_modules whose code was loaded. */
  packages: string[];
  /** The chunks of the bundle, by the name of the module they hold (inbound for inbound-HASH.js). */
  chunks: string[];
}

const BIN = join('bin', 'pillion.js');
const MODULES = join('cli', 'main.js');

/** Runs `pillion run -c config` until ready, stops it, and says what it loaded. */
async function loadedBy(
  entry: string,
  name: string,
  config: string,
  env: Record<string, string> = {},
): Promise<Loaded> {
  name = `${name}-${entry === BIN ? 'bin' : 'modules'}`;
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, config);
  const record = join(dir, `${name}.loaded`);
  const child = spawn(
    process.execPath,
    ['--import', join(dir, 'record.mjs'), join(dist, entry), 'run', '-c', file],
    { env: { ...process.env, ...env, PILLION_TEST_LOADED: record }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise((resolve) => child.on('close', resolve));
  try {
    const port = await waitFor(
      () => {
        const m =
          /"msg":"admin server listening".*?"admin":"[^"]*:(\d+)"|"admin":"[^"]*:(\d+)".*?"msg":"admin server listening"/.exec(
            out,
          );
        return m ? Number(m[1] ?? m[2]) : undefined;
      },
      // A bound on a busy machine, not a measure.
      { what: `${name}: the admin server (output so far: ${out})`, timeoutMs: 30_000 },
    );
    await waitFor(async () => (await status(`http://127.0.0.1:${port}/readyz`)) === 200, {
      what: `${name}: /readyz 200`,
      timeoutMs: 30_000,
    });
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  const urls = [...new Set(readFileSync(record, 'utf8').split('\n').filter(Boolean))];
  const files = urls
    .filter((u) => u.startsWith(`file://${dist}/`))
    .map((u) => u.slice(`file://${dist}/`.length))
    .sort();
  const packages = [
    ...new Set(urls.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? [])),
  ].sort();
  const chunks = files
    .flatMap((f) => /^bin\/(.+)-[A-Z0-9]{8}\.js$/.exec(f)?.[1] ?? [])
    .filter((c) => c !== 'chunk')
    .sort();
  const builtins = urls.filter((u) => u.startsWith('node:')).sort();
  return { files, builtins, packages, chunks };
}

function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

const folders = (l: Loaded) =>
  [...new Set(l.files.map((f) => (f.includes('/') ? f.split('/')[0]! : f)))].sort();
const testSupport = (l: Loaded) =>
  l.files.filter((f) => /test-support|test-certs|harness|\.test\.js$/.test(f));

// Shared by every config: the CLI's entry and run command, the runtime, the config loader, the
// admin server and the metrics registry. Never: other commands, the pod runner, test helpers.
const BASE_FOLDERS = ['admin', 'cli', 'config', 'lib', 'metrics', 'roles.js', 'runtime'];
const BASE_PACKAGES = ['commander', 'pino', 'yaml', 'zod'];
// The bundle's chunks that hold one module a dynamic import() loads (the others hold code shared
// by several, and are named chunk-HASH.js): a subcommand, a role's module, schema or checks.
const BASE_CHUNKS = ['program', 'run'];

// The proxy reads a certificate's SPIFFE IDs (for its access log and upstream checks) with the
// identity role's parser; the rest of that role loads only with an identity section.
const IDENTITY_SHARED = ['identity/principal.js', 'identity/spiffe.js'];
const identityFiles = (l: Loaded) => l.files.filter((f) => f.startsWith('identity/'));

function assertBase(l: Loaded) {
  for (const f of ['cli/pod.js', 'cli/validate.js', 'cli/schema.js', 'cli/inject.js'])
    assert.ok(!l.files.includes(f), `${f} is loaded`);
  assert.deepEqual(
    l.files.filter((f) => f.startsWith('inject/')),
    [],
    'the Kubernetes injector is loaded',
  );
  assert.deepEqual(testSupport(l), [], 'test helpers are loaded');
  for (const p of ['pino-pretty', 'prom-client', 'kubernetes-models', 'fast-json-patch'])
    assert.ok(!l.packages.includes(p), `${p} is loaded`);
}

const MINIMAL = 'admin:\n  listen: 127.0.0.1:0\n';
const inboundOnly = () =>
  `admin:\n  listen: 127.0.0.1:0\napp:\n  port: ${appPort}\ninbound:\n  listeners:\n    - address: 127.0.0.1:0\n`;

async function demo(entry: string): Promise<Loaded> {
  const tls = join(dir, 'tls');
  execFileSync(process.execPath, [join(root, 'examples', 'legacy-orders', 'make-cert.mjs'), tls], {
    stdio: 'ignore',
  });
  const d = mkdtempSync(join(dir, 'demo-'));
  mkdirSync(join(d, 'app-logs'), { recursive: true });
  mkdirSync(join(d, 'settings'), { recursive: true });
  writeFileSync(join(d, 'settings', 'orders.json'), '{ "currency": "EUR", "discountPercent": 10 }\n');
  return loadedBy(
    entry,
    'demo',
    readFileSync(join(root, 'examples', 'legacy-orders', 'pillion.yaml'), 'utf8'),
    {
      ADMIN_PORT: '0',
      METRICS_PORT: '0',
      APP_PORT: String(appPort),
      HTTPS_PORT: '0',
      TLS_DIR: tls,
      LOGS_DATA_DIR: join(d, 'state'),
      APP_LOG_DIR: join(d, 'app-logs'),
      SHIPPED_LOGS_DIR: join(d, 'logs'),
      SETTINGS_FILE: join(d, 'settings', 'orders.json'),
      APP_CONFIG_DIR: join(d, 'app-config'),
      APP_PID_FILE: join(d, 'run', 'orders.pid'),
      OUTBOUND_PORT: '0',
    },
  );
}

test('a minimal config (the admin server alone) loads no role', async () => {
  const l = await loadedBy(MODULES, 'minimal', MINIMAL);
  assertBase(l);
  assert.ok(!l.files.includes('metrics/metrics-module.js'), 'the metrics role is loaded');
  assert.deepEqual(folders(l), BASE_FOLDERS);
  assert.deepEqual(l.packages, BASE_PACKAGES);
  assert.ok(!l.files.includes('runtime/app-health.js'));
});

test('an inbound-only config loads the proxy, and not the log role', async () => {
  const l = await loadedBy(MODULES, 'inbound', inboundOnly());
  assertBase(l);
  assert.deepEqual(folders(l), [...BASE_FOLDERS, 'identity', 'proxy'].sort());
  assert.deepEqual(identityFiles(l), IDENTITY_SHARED);
  assert.deepEqual(l.packages, BASE_PACKAGES);
  assert.ok(l.files.includes('proxy/inbound.js') && l.files.includes('runtime/app-health.js'));
  assert.ok(!l.files.includes('proxy/outbound.js'), 'the outbound role is loaded');
  assert.ok(!l.files.includes('proxy/preflight.js'), "validate's checks are loaded");
  for (const f of [
    'proxy/transform/index.js',
    'proxy/transform/route-transform.js',
    'proxy/transform/codecs.js',
  ])
    assert.ok(!l.files.includes(f), `${f} is loaded (only the schema of transforms should be)`);
  // Resilience code loads only where a route or an upstream sets it.
  for (const f of [
    'proxy/upstream/retry.js',
    'proxy/upstream/balancers.js',
    'proxy/upstream/outlier.js',
    'proxy/mirror.js',
  ])
    assert.ok(!l.files.includes(f), `${f} is loaded`);
  // The listener accepts h2c, but HTTP/2's code and node:http2 wait for a client that speaks it.
  assert.deepEqual(
    l.files.filter((f) => f.startsWith('proxy/http2/')),
    ['proxy/http2/deferred-handler.js'],
  );
  assert.ok(!l.builtins.includes('node:http2'), 'node:http2 is loaded');
});

test('HTTP/2 loads with an upstream that speaks it', async () => {
  const l = await loadedBy(
    MODULES,
    'h2-upstream',
    `admin: { listen: 127.0.0.1:0 }
outbound:
  listener: { address: 127.0.0.1:0 }
  upstreams:
    grpc: { endpoints: [127.0.0.1:${appPort}], protocol: h2 }
`,
  );
  assertBase(l);
  assert.ok(
    l.files.includes('proxy/http2/upstream-kit.js') && l.files.includes('proxy/http2/client-sessions.js'),
  );
  assert.ok(l.builtins.includes('node:http2'));
  // The listener side of HTTP/2 still waits for a client.
  assert.ok(!l.files.includes('proxy/http2/h2-handler.js'), 'the listener side of HTTP/2 is loaded');
});

test("the demo's sidecar config loads the inbound proxy with its request filters (and jose), the outbound proxy with the resilience it sets, the log role, sync and metrics, nothing else", async () => {
  const l = await demo(MODULES);
  assertBase(l);
  assert.deepEqual(folders(l), [...BASE_FOLDERS, 'identity', 'logs', 'proxy', 'sync', 'top'].sort());
  assert.deepEqual(identityFiles(l), IDENTITY_SHARED);
  // The demo checks a JWT, authorizes and rate-limits: the filters and jose, which an inbound
  // section without them never loads.
  // ...and sync, whose engine renders with liquidjs; and metrics, whose JSON rules use jsonpath-plus.
  assert.deepEqual(l.packages, [...BASE_PACKAGES, 'jose', 'jsonpath-plus', 'liquidjs'].sort());
  assert.ok(l.files.includes('proxy/filters/jwt.js'), 'the JWT filter is not loaded');
  // The app calls the inventory through the outbound listener, with retries, outlier detection
  // and health checks; the other balancers and mirroring, which it does not set, stay unloaded.
  for (const f of [
    'proxy/outbound.js',
    'proxy/upstream/retry.js',
    'proxy/upstream/outlier.js',
    'proxy/upstream/health-check.js',
  ])
    assert.ok(l.files.includes(f), `${f} is not loaded`);
  for (const f of ['proxy/upstream/balancers.js', 'proxy/mirror.js'])
    assert.ok(!l.files.includes(f), `${f} is loaded`);
  // Its TLS listener offers h2 by ALPN; the code comes with the first client that takes it.
  assert.ok(!l.builtins.includes('node:http2'), 'node:http2 is loaded');
});

test('a route with a transform loads the adapter with jsonata and fast-xml-parser; routes without one do not (above)', async () => {
  const l = await loadedBy(
    MODULES,
    'transform',
    `${inboundOnly()}  routes:
    - match: { prefix: /v2 }
      transform: { request: { body: '{ "action": method, "payload": data }' } }
    - {}
`,
  );
  assertBase(l);
  // fast-xml-parser comes with its own small dependencies.
  const xml = ['@nodable/entities', 'anynum', 'fast-xml-builder', 'is-unsafe', 'path-expression-matcher'];
  assert.deepEqual(
    l.packages,
    [...BASE_PACKAGES, ...xml, 'strnum', 'xml-naming', 'fast-xml-parser', 'jsonata'].sort(),
  );
  assert.ok(l.files.includes('proxy/transform/route-transform.js'), 'the adapter is not loaded');
});

test("a sync destination with a JSON Schema check loads Ajv; the demo's sync, which has none, does not (above)", async () => {
  const d = mkdtempSync(join(dir, 'schema-'));
  writeFileSync(join(d, 'in.json'), '{"port": 80}\n');
  const l = await loadedBy(
    MODULES,
    'schema',
    `admin: { listen: 127.0.0.1:0 }
sync:
  sources:
    s: { type: file, path: ${join(d, 'in.json')}, parse: json }
  destinations:
    o: { path: ${join(d, 'out.json')}, source: s, format: json, check: { schema: { type: object } } }
`,
  );
  assertBase(l);
  assert.deepEqual(l.packages, [...BASE_PACKAGES, 'ajv', 'ajv-formats', 'liquidjs'].sort());
  assert.ok(l.files.includes('sync/schema-check.js'));
});

test('a metrics section loads the metrics module, and jsonpath-plus only for a target that maps JSON', async () => {
  const target = (format: string) =>
    `admin: { listen: 127.0.0.1:0 }
metrics:
  listen: 127.0.0.1:0
  scrape:
    app: { url: "http://127.0.0.1:${appPort}/m", format: ${format}${format === 'json' ? ', rules: [{ name: a, value: $.a }]' : ''} }
`;
  const text = await loadedBy(MODULES, 'metrics-text', target('prometheus'));
  assertBase(text);
  // With /top's numbers as metrics (processes: true, the default), the process view loads too.
  assert.deepEqual(folders(text), [...BASE_FOLDERS, 'top'].sort());
  assert.deepEqual(text.packages, BASE_PACKAGES);
  assert.ok(
    text.files.includes('metrics/metrics-module.js') && !text.files.includes('metrics/json-rules.js'),
  );
  const json = await loadedBy(MODULES, 'metrics-json', target('json'));
  assert.deepEqual(json.packages, [...BASE_PACKAGES, 'jsonpath-plus'].sort());
  assert.ok(json.files.includes('metrics/json-rules.js'));
});

test('the bundled bin loads only the chunks of the roles configured, and no package file', async () => {
  const minimal = await loadedBy(BIN, 'minimal', MINIMAL);
  assert.deepEqual(minimal.packages, [], 'the bundle reads a package from node_modules');
  assert.ok(
    minimal.files.every((f) => f.startsWith('bin/')),
    'the bundle loads a module of dist/',
  );
  assert.deepEqual(minimal.chunks, BASE_CHUNKS);
  const inbound = await loadedBy(BIN, 'inbound', inboundOnly());
  assert.deepEqual(inbound.packages, []);
  // The role's schema (config-HASH.js) is loaded with its section.
  assert.deepEqual(inbound.chunks, [...BASE_CHUNKS, 'app-health', 'config', 'config', 'inbound'].sort());
  assert.ok(!inbound.builtins.includes('node:http2'), 'the bundle loads node:http2 for an h2c listener');
  const d = await demo(BIN);
  assert.deepEqual(d.packages, []);
  assert.deepEqual(
    d.chunks,
    [
      ...BASE_CHUNKS,
      'app-health',
      'config',
      'config',
      'config',
      'config',
      'config',
      'filters',
      'health-check',
      'inbound',
      'json-rules',
      'logs-module',
      'metrics-module',
      'outbound',
      'outlier',
      'retry',
      'sync',
      'sync-module',
      'top',
    ].sort(),
  );
});
