// The inbound and outbound sections' own checks: each mistake is one positioned error with a hint.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { parsePillionConfig } from '../roles.js';

async function errors(text: string): Promise<string[]> {
  const r = await parsePillionConfig(text, 'p.yaml', {});
  assert.ok(!r.ok, 'expected the config to be refused');
  return r.issues.map(formatIssue);
}

test('a route naming an upstream that is not defined: its line, and the near name', async () => {
  const text = [
    'app: { port: 8080 }',
    'inbound:',
    '  listeners: [{ address: "127.0.0.1:8443" }]',
    '  routes:',
    '    - upstream: paymnts',
    '  upstreams:',
    '    payments: { endpoints: ["localhost:9000"] }',
    '',
  ].join('\n');
  assert.deepEqual(await errors(text), [
    'p.yaml:5:17 PILLION_ERR_PROXY_UNKNOWN_UPSTREAM inbound.routes[0].upstream: route 0 names upstream "paymnts" (did you mean "payments"? defined: app, payments)',
  ]);
});

test('routes to the app need an app section; a tcp listener too', async () => {
  const text = [
    'inbound:',
    '  listeners:',
    '    - { address: "127.0.0.1:8443" }',
    '    - { address: "127.0.0.1:5433", mode: tcp }',
    '',
  ].join('\n');
  const out = await errors(text);
  assert.equal(out.length, 2);
  assert.match(
    out[0]!,
    /PILLION_ERR_PROXY_UNKNOWN_UPSTREAM .*route 0 goes to the app, but there is no app section/,
  );
  assert.match(out[1]!, /PILLION_ERR_PROXY_UNKNOWN_UPSTREAM .*tcp listener 1 forwards to the app/);
});

test('rewritePrefix without a prefix match, and upstream on an HTTP listener, are refused where they are', async () => {
  const text = [
    'app: { port: 8080 }',
    'inbound:',
    '  listeners: [{ address: "127.0.0.1:8443", upstream: app }]',
    '  routes:',
    '    - { match: { exact: /a }, rewritePrefix: /b }',
    '',
  ].join('\n');
  const out = await errors(text);
  assert.ok(
    out.some((e) =>
      /^p\.yaml:3:\d+ .*inbound\.listeners\[0\]\.upstream: upstream on a listener is for mode: tcp/.test(e),
    ),
    out.join('\n'),
  );
  assert.ok(
    out.some((e) =>
      /^p\.yaml:5:\d+ .*inbound\.routes\[0\]\.rewritePrefix: rewritePrefix needs match\.prefix/.test(e),
    ),
    out.join('\n'),
  );
});

test('the outbound listener defaults to 127.0.0.1:15001; an unknown section key gets a suggestion', async () => {
  const ok = await parsePillionConfig(
    'outbound:\n  upstreams:\n    svc: { endpoints: ["10.0.0.1:80"] }\n',
    'p.yaml',
    {},
  );
  assert.ok(ok.ok);
  assert.deepEqual(ok.config.outbound?.listener.address, { host: '127.0.0.1', port: 15001 });
  assert.match(
    (await errors('outbound:\n  upstream: {}\n'))[0]!,
    /unknown key \(did you mean "upstreams"\?\)/,
  );
});

test('h2c is refused in upgradeProtocols: a tunnel would pass the routes', async () => {
  const text = [
    'app: { port: 8080 }',
    'inbound:',
    '  listeners: [{ address: "127.0.0.1:8443" }]',
    '  routes:',
    '    - upgradeProtocols: [websocket, H2C]',
    '',
  ].join('\n');
  const out = await errors(text);
  assert.equal(out.length, 1);
  assert.match(
    out[0]!,
    /^p\.yaml:5:\d+ PILLION_ERR_CONFIG_BAD_VALUE inbound\.routes\[0\]\.upgradeProtocols\[1\]: h2c is never tunnelled/,
  );
});

test('tls: cipher and group names are checked against OpenSSL, with a hint; modern has no TLS 1.2 suite', async () => {
  const text = [
    'app: { port: 8080 }',
    'inbound:',
    '  listeners:',
    '    - address: "127.0.0.1:8443"',
    '      tls:',
    '        certificates: [{ cert: /c.pem, key: /k.pem }]',
    '        profile: modern',
    '        minVersion: TLSv1.2',
    '        ciphers: [ECDHE-RSA-AES128-GCM-SHA265]',
    '        ecdhCurves: [X25519, curve9]',
    '    - address: "127.0.0.1:8444"',
    '      tls:',
    '        certificates: [{ cert: /c.pem, key: /k.pem }]',
    '        profile: modern',
    '        minVersion: TLSv1.2',
    '',
  ].join('\n');
  const out = await errors(text);
  assert.equal(out.length, 3, out.join('\n'));
  assert.match(
    out[0]!,
    /^p\.yaml:9:\d+ PILLION_ERR_CONFIG_BAD_VALUE .*ciphers\[0\]: "ECDHE-RSA-AES128-GCM-SHA265" is not a cipher suite .* \(did you mean "ECDHE-RSA-AES128-GCM-SHA256"\?\)/,
  );
  assert.match(
    out[1]!,
    /^p\.yaml:10:\d+ PILLION_ERR_CONFIG_BAD_VALUE .*ecdhCurves\[1\]: "curve9" is not a key-exchange group/,
  );
  assert.match(
    out[2]!,
    /^p\.yaml:\d+:\d+ PILLION_ERR_CONFIG_BAD_VALUE .*listeners\[1\]\.tls\.minVersion: profile modern has no TLS 1\.2 cipher suite/,
  );
});

test('resilience settings: each mistake at its line, and a whole example loads', async () => {
  const bad = [
    'outbound:',
    '  upstreams:',
    '    inventory:',
    '      endpoints: [{ address: 127.0.0.1:9001, weight: 0 }]',
    '      loadBalancer: { policy: maglev }',
    '      retries: { retryOn: "5xx,teapot", backoff: { base: 100ms, max: 10ms } }',
    '    empty: {}',
    '',
  ].join('\n');
  const out = await errors(bad);
  assert.equal(out.length, 4, out.join('\n'));
  assert.match(
    out.find((l) => l.includes('weight'))!,
    /^p\.yaml:4:/,
  );
  assert.match(
    out.find((l) => l.includes('needs hashOn'))!,
    /^p\.yaml:5:/,
  );
  assert.match(
    out.find((l) => l.includes('teapot'))!,
    /^p\.yaml:6:/,
  );
  const backoff = [
    'outbound:',
    '  upstreams:',
    '    inventory:',
    '      endpoints: [127.0.0.1:9001]',
    '      retries: { backoff: { base: 100ms, max: 10ms } }',
    '',
  ].join('\n');
  assert.match((await errors(backoff))[0]!, /^p\.yaml:5:.*backoff\.max is below backoff\.base/);
  assert.match(
    out.find((l) => l.includes('needs endpoints, srv or endpointsFile'))!,
    /^p\.yaml:7:/,
  );
  const good = [
    'outbound:',
    '  upstreams:',
    '    inventory:',
    '      endpoints: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3, labels: { version: v2 } }]',
    '      loadBalancer: { policy: ring-hash, hashOn: { header: x-user } }',
    '      retries: { attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset" }',
    '      timeout: 10s',
    '',
  ].join('\n');
  const r = await parsePillionConfig(good, 'p.yaml', {});
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
});
