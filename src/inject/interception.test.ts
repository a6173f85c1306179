// Interception for real: a network namespace standing for the pod (a veth pair to this host),
// the app and pillion in it, the rules `pillion iptables --apply` puts in place (Debian's iptables),
// and traffic in both directions proven to pass through pillion (its access log) without a loop.
// Needs root (network namespaces, iptables); skipped, saying so, otherwise.

import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, get, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const isRoot = process.getuid?.() === 0;
const SKIP = isRoot
  ? false
  : 'needs root: network namespaces and iptables (run the suite as root to exercise interception)';

const id = process.pid % 10_000;
const ns = `pillion-t${id}`;
const octet = 100 + (process.pid % 150);
const hostIp = `10.214.${octet}.1`;
const podIp = `10.214.${octet}.2`;
const hostVeth = `pvh${id}`;
const podVeth = `pvp${id}`;
const UID = 1337;
const children: ChildProcess[] = [];
let dir = '';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (!isRoot) return;
  try {
    sh('ip', ['netns', 'del', ns]); // the veth pair goes with it
  } catch {
    // not created
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * A node binary pillion's user can run: this one, or a copy in the test's directory when it lies
 * where other users cannot reach it (Node 24 from the npm registry, under /root/.npm).
 */
function nodeForOthers(dir: string): string {
  let ok = (statSync(process.execPath).mode & 0o005) === 0o005;
  for (let d = dirname(process.execPath); ok && d !== dirname(d); d = dirname(d))
    ok = (statSync(d).mode & 0o001) !== 0;
  if (ok) return process.execPath;
  const copy = join(dir, 'node');
  copyFileSync(process.execPath, copy);
  chmodSync(copy, 0o755);
  return copy;
}

/** Runs a command in the pod's namespace (as pillion's user with `uid`), collecting its output. */
function inPod(args: string[], uid?: number): { child: ChildProcess; out: () => string } {
  const ids = uid === undefined ? [] : ['-S', String(uid), '-G', String(uid)];
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, ...ids, '--', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  return { child, out: () => out };
}

function fetch(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

const APP = `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.url !== '/call') return res.end('app:' + req.headers['x-request-id'] + '\\n');
  // The app calls a service as it always has; interception sends the call to pillion.
  http.get({ host: process.env.UPSTREAM_HOST, port: Number(process.env.UPSTREAM_PORT), path: '/hello', headers: { host: 'payments' } }, (up) => {
    let body = '';
    up.setEncoding('utf8').on('data', (c) => (body += c));
    up.on('end', () => res.end('called:' + body));
  }).on('error', (err) => { res.statusCode = 502; res.end(String(err)); });
}).listen(8080, '0.0.0.0', () => console.log('app listening'));
`;

test(
  'iptables interception: inbound and outbound TCP pass through pillion, its own traffic is not looped back',
  { skip: SKIP },
  async () => {
    dir = mkdtempSync(join(tmpdir(), 'pillion-interception-'));
    chmodSync(dir, 0o755);
    // A namespace left by a run that was killed (same pid, rare) is removed first.
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', podVeth]);
    sh('ip', ['link', 'set', podVeth, 'netns', ns]);
    sh('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostVeth]);
    sh('ip', ['link', 'set', hostVeth, 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${podIp}/30`, 'dev', podVeth]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', podVeth, 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);

    // The service the app calls, outside the pod: it counts what reaches it.
    const seen: IncomingHttpHeaders[] = [];
    const upstream = createServer((req, res) => {
      seen.push(req.headers);
      res.end('hello from payments\n');
    });
    await new Promise<void>((resolve) => upstream.listen(0, hostIp, resolve));
    after(() => upstream.close());
    const upPort = (upstream.address() as AddressInfo).port;

    writeFileSync(
      join(dir, 'pillion.yaml'),
      `admin: { listen: 127.0.0.1:15000 }
app: { port: 8080, health: { protocol: tcp, interval: 1s } }
inbound:
  listeners:
    - { name: intercepted, address: 0.0.0.0:15006 }
  accessLog: { path: stdout }
outbound:
  listener: { address: 127.0.0.1:15001 }
  upstreams:
    payments: { endpoints: [${hostIp}:${upPort}] }
  accessLog: { path: stdout }
`,
    );
    writeFileSync(join(dir, 'app.js'), APP);

    // The init container's step, then the containers.
    const rules = sh('nsenter', [
      `--net=/run/netns/${ns}`,
      '--',
      process.execPath,
      cli,
      'iptables',
      '--apply',
      '--inbound-ports',
      '8080',
      '--uid',
      String(UID),
    ]);
    assert.match(rules, /-A PILLION_OUTPUT -m owner --uid-owner 1337 -j RETURN/);
    const nat = sh('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-S']);
    assert.match(nat, /-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/);
    const app = inPod([
      'env',
      `UPSTREAM_HOST=${hostIp}`,
      `UPSTREAM_PORT=${upPort}`,
      process.execPath,
      join(dir, 'app.js'),
    ]);
    const pillion = inPod(
      [
        nodeForOthers(dir),
        cli,
        'run',
        '-c',
        join(dir, 'pillion.yaml'),
        '--probe-listen',
        '0.0.0.0:15021',
        '--log-format',
        'json',
      ],
      UID,
    );
    await waitFor(
      async () => (await fetch(`http://${podIp}:15021/readyz`).catch(() => ({ status: 0 }))).status === 200,
      {
        what: `pillion ready in the pod (its output: ${pillion.out()}; the app's: ${app.out()})`,
        timeoutMs: 60_000,
      },
    );

    // Inbound: a client outside the pod calls the app's port; pillion's inbound listener answers.
    const inbound = await fetch(`http://${podIp}:8080/`);
    assert.equal(inbound.status, 200);
    assert.match(inbound.body, /^app:[0-9a-f-]{36}\n$/, 'the app did not get the request id pillion adds');
    const accessLines = () =>
      pillion
        .out()
        .split('\n')
        .filter((l) => l.includes('"response_code"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor(() => accessLines().some((l) => l.listener === 'intercepted'), {
      what: 'the inbound access log line',
      timeoutMs: 10_000,
    });
    const inLine = accessLines().find((l) => l.listener === 'intercepted')!;
    assert.match(String(inLine.downstream_remote_address), new RegExp(`^${hostIp.replaceAll('.', '\\.')}:`));

    // Outbound: the app calls the service by its address; the call goes through pillion's outbound
    // listener, and pillion's own connection (uid 1337) goes straight out: exactly one request arrives.
    const outbound = await fetch(`http://${podIp}:8080/call`);
    assert.equal(outbound.status, 200, outbound.body);
    assert.equal(outbound.body, 'called:hello from payments\n');
    assert.equal(seen.length, 1, 'the call looped or was duplicated');
    assert.ok(seen[0]!['x-request-id'], 'the call did not pass through pillion (no request id)');
    await waitFor(() => accessLines().some((l) => l.upstream_host === `${hostIp}:${upPort}`), {
      what: `the outbound access log line (${pillion.out()})`,
      timeoutMs: 10_000,
    });
    // Both requests of this test, each through pillion once: two inbound, one outbound.
    await waitFor(() => accessLines().filter((l) => l.listener === 'intercepted').length === 2, {
      what: 'the second inbound access log line',
      timeoutMs: 10_000,
    });
    assert.equal(accessLines().filter((l) => l.upstream_host === `${hostIp}:${upPort}`).length, 1);
  },
);
