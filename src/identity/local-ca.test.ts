// The local CA: what `pillion ca` makes is a SPIFFE X.509-SVID chain that OpenSSL and Node verify,
// with the key files kept to their owner, and refusals for what it must not sign.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { PillionError } from '../lib/errors.js';
import { LocalCa } from './local-ca.js';
import { parseSpiffeId, principalOf } from './spiffe.js';

const root = mkdtempSync(join(tmpdir(), 'pillion-ca-'));
after(() => rmSync(root, { recursive: true, force: true }));
const cli = join(new URL('../../', import.meta.url).pathname, 'dist/cli/main.js');

test('init makes a P-256 root with its key at 0600; issue makes a 24 h leaf with one SPIFFE URI SAN', async () => {
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const dir = join(root, 'a');
  const ca = await LocalCa.init(dir, { trustDomain: 'cluster.local', clock });
  assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
  const root509 = new X509Certificate(ca.bundle);
  assert.ok(root509.ca);
  assert.equal(root509.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const leaf = await ca.issue({ spiffeId: 'spiffe://cluster.local/ns/production/sa/order-service' });
  const x = new X509Certificate(leaf.cert);
  assert.equal(x.subjectAltName, 'URI:spiffe://cluster.local/ns/production/sa/order-service');
  assert.ok(x.verify(root509.publicKey));
  assert.ok(x.checkIssued(root509));
  assert.equal(leaf.notAfter.getTime() - clock.now(), 24 * 3_600_000);
  assert.ok(leaf.notBefore.getTime() < clock.now(), 'backdated a little for peers whose clock lags');
  assert.deepEqual(x.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
});

test('a CA is opened again from its directory, and refuses a key others can read', async () => {
  const dir = join(root, 'b');
  const made = await LocalCa.init(dir, { trustDomain: 'example.org' });
  const opened = await LocalCa.open(dir);
  assert.equal(opened.trustDomain, 'example.org');
  assert.equal(opened.bundle, made.bundle);
  const leaf = await opened.issue({ spiffeId: 'spiffe://example.org/ns/a/sa/b', ttlMs: 60_000 });
  assert.ok(new X509Certificate(leaf.cert).checkIssued(new X509Certificate(made.bundle)));
  chmodSync(join(dir, 'ca.key'), 0o644);
  await assert.rejects(LocalCa.open(dir), (e: PillionError) => {
    assert.equal(e.code, 'PILLION_ERR_CA_FILE');
    assert.match(e.message, /readable by others.*chmod 600/);
    return true;
  });
});

test('what the CA refuses: replacing itself, another trust domain, a bare trust domain, a bad path', async () => {
  const dir = join(root, 'c');
  await LocalCa.init(dir, { trustDomain: 'cluster.local' });
  await assert.rejects(LocalCa.init(dir, { trustDomain: 'cluster.local' }), {
    code: 'PILLION_ERR_CA_EXISTS',
  });
  const ca = await LocalCa.open(dir);
  for (const id of [
    'spiffe://other.domain/ns/a/sa/b',
    'spiffe://cluster.local',
    'spiffe://cluster.local/ns//sa/b',
    'https://cluster.local/x',
  ])
    await assert.rejects(ca.issue({ spiffeId: id }), { code: 'PILLION_ERR_CA_BAD_IDENTITY' }, id);
  await assert.rejects(LocalCa.open(join(root, 'missing')), { code: 'PILLION_ERR_CA_NOT_FOUND' });
  writeFileSync(join(dir, 'ca.key'), 'not a key', { mode: 0o600 });
  await assert.rejects(LocalCa.open(dir), { code: 'PILLION_ERR_CA_FILE' });
});

test('a leaf never outlives its CA', async () => {
  const ca = await LocalCa.init(join(root, 'd'), { trustDomain: 'td', ttlMs: 3_600_000 });
  const leaf = await ca.issue({ spiffeId: 'spiffe://td/ns/x/sa/y', ttlMs: 24 * 3_600_000 });
  assert.ok(leaf.notAfter.getTime() <= ca.notAfter.getTime());
});

test('SPIFFE IDs and the principal Istio writes', () => {
  const id = parseSpiffeId('spiffe://cluster.local/ns/production/sa/order-service');
  assert.ok(typeof id !== 'string');
  assert.equal(id.namespace, 'production');
  assert.equal(id.serviceAccount, 'order-service');
  assert.equal(principalOf(id.uri), 'cluster.local/ns/production/sa/order-service');
  for (const bad of ['spiffe://Upper/x', 'spiffe://td/a/../b', 'spiffe://td/a/', 'spiffe:/td/a'])
    assert.equal(typeof parseSpiffeId(bad), 'string', bad);
});

test('pillion ca init, issue and bundle: the files openssl verify accepts', () => {
  const dir = join(root, 'cli');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, 'ca', ...args], { cwd: root, encoding: 'utf8' });
  const init = run('init', '--dir', dir, '--trust-domain', 'cluster.local');
  assert.equal(init.status, 0, init.stderr);
  assert.match(init.stdout, /created CA for trust domain cluster.local/);
  const out = join(root, 'order');
  const issue = run(
    'issue',
    '--dir',
    dir,
    '--identity',
    'spiffe://cluster.local/ns/production/sa/order-service',
    '--ttl',
    '2h',
    '--out',
    out,
  );
  assert.equal(issue.status, 0, issue.stderr);
  assert.equal(statSync(`${out}.key`).mode & 0o777, 0o600);
  const bundle = run('bundle', '--dir', dir);
  assert.equal(bundle.status, 0);
  assert.equal(bundle.stdout, readFileSync(join(dir, 'ca.crt'), 'utf8'));
  writeFileSync(join(root, 'bundle.pem'), bundle.stdout);
  const verify = spawnSync('openssl', ['verify', '-CAfile', join(root, 'bundle.pem'), `${out}.crt`], {
    encoding: 'utf8',
  });
  assert.equal(verify.status, 0, verify.stderr);
  const again = run('init', '--dir', dir);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /PILLION_ERR_CA_EXISTS/);
  const badTtl = run(
    'issue',
    '--dir',
    dir,
    '--identity',
    'spiffe://cluster.local/ns/a/sa/b',
    '--ttl',
    'soon',
  );
  assert.equal(badTtl.status, 1);
  assert.match(badTtl.stderr, /PILLION_ERR_CLI_BAD_OPTION/);
});
