// `pillion inject` as users run it (stdin, --config, --legacy-sidecar, errors) and the probe
// listener (`pillion run --probe-listen`) the injected sidecar is probed on.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { waitFor } from '../lib/wait-for.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'pillion-inject-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POD = `apiVersion: v1
kind: Pod
metadata: { name: web }
spec:
  containers:
    - name: web
      image: nginx:1.27
`;

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input, cwd: dir });
}

test('pillion inject -f - reads stdin, writes the manifests to stdout and what it did to stderr', () => {
  const r = run(['inject', '-f', '-'], POD);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, 'pod/web: injected (native sidecar)\n');
  const [pod] = parseAllDocuments(r.stdout).map(
    (d) => d.toJS() as { spec: { initContainers: { name: string }[] } },
  );
  assert.equal(pod!.spec.initContainers[0]!.name, 'pillion');
  const legacy = run(['inject', '-f', '-', '--legacy-sidecar'], POD);
  assert.equal(legacy.stderr, 'pod/web: injected (legacy sidecar)\n');
});

test('pillion inject --config validates the sidecar config first and refuses a bad one at its line:col', () => {
  writeFileSync(join(dir, 'pod.yaml'), POD);
  writeFileSync(join(dir, 'good.yaml'), 'admin:\n  listen: 127.0.0.1:15000\n');
  const good = run(['inject', '-f', 'pod.yaml', '-c', 'good.yaml']);
  assert.equal(good.status, 0, good.stderr);
  const kinds = parseAllDocuments(good.stdout).map((d) => (d.toJS() as { kind: string }).kind);
  assert.deepEqual(kinds, ['ConfigMap', 'Pod']);
  writeFileSync(join(dir, 'bad.yaml'), 'admin:\n  listn: 127.0.0.1:15000\n');
  const bad = run(['inject', '-f', 'pod.yaml', '-c', 'bad.yaml']);
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /PILLION_ERR_INJECT_CONFIG: bad.yaml is not a valid pillion config/);
  assert.match(bad.stderr, /bad.yaml:2:3 PILLION_ERR_CONFIG_UNKNOWN_KEY admin.listn/);
  const missing = run(['inject', '-f', 'nope.yaml']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope.yaml:1:1 PILLION_ERR_CONFIG_READ .*file not found/);
  writeFileSync(join(dir, 'injector.yaml'), 'sidecar:\n  imag: x\n');
  const badInjector = run(['inject', '-f', 'pod.yaml', '--injector-config', 'injector.yaml']);
  assert.equal(badInjector.status, 1);
  assert.match(
    badInjector.stderr,
    /injector.yaml:2:3 PILLION_ERR_CONFIG_UNKNOWN_KEY sidecar.imag: .*did you mean "image"/,
  );
});

test('pillion run --probe-listen serves /healthz and /readyz alone, once every role has started', async () => {
  const config = join(dir, 'probe.yaml');
  writeFileSync(config, 'admin:\n  listen: 127.0.0.1:0\n');
  const child = spawn(
    process.execPath,
    [cli, 'run', '-c', config, '--probe-listen', '127.0.0.1:0', '--log-format', 'json'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    const port = await waitFor(() => /"probes":"127\.0\.0\.1:(\d+)"/.exec(out)?.[1], {
      what: `the probe listener (output: ${out})`,
      timeoutMs: 30_000,
    });
    const fetch = (path: string, host?: string) =>
      new Promise<number>((resolve, reject) =>
        get({ port: Number(port), path, host: '127.0.0.1', headers: host ? { host } : {} }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        }).on('error', reject),
      );
    // The kubelet probes the pod's address, so any Host is answered; nothing else is served.
    assert.equal(await fetch('/healthz', '10.1.2.3:15021'), 200);
    assert.equal(await fetch('/readyz', '10.1.2.3:15021'), 200);
    assert.equal(await fetch('/config'), 404);
    assert.equal(await fetch('/quitquitquit'), 404);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
  const bad = run(['run', '--probe-listen', 'nowhere']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /PILLION_ERR_CLI_BAD_OPTION: --probe-listen "nowhere"/);
});

test('pillion webhook refuses certificate files it cannot use, naming them', () => {
  const r = run([
    'webhook',
    '--cert',
    'missing.crt',
    '--key',
    'missing.key',
    '--listen',
    '127.0.0.1:0',
    '--log-format',
    'json',
  ]);
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, /PILLION_ERR_WEBHOOK_TLS.*cannot use missing.crt and missing.key/);
});

test('pillion iptables --print shows the rules; bad options are refused, each named', () => {
  const r = run([
    'iptables',
    '--print',
    '--inbound-ports',
    '8080,8443',
    '--exclude-outbound-cidrs',
    '10.96.0.1/32',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    `*nat
:PILLION_INBOUND - [0:0]
:PILLION_IN_REDIRECT - [0:0]
:PILLION_OUTPUT - [0:0]
:PILLION_REDIRECT - [0:0]
-A PREROUTING -p tcp -j PILLION_INBOUND
-A PILLION_INBOUND -p tcp --dport 8080 -j PILLION_IN_REDIRECT
-A PILLION_INBOUND -p tcp --dport 8443 -j PILLION_IN_REDIRECT
-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -p tcp -j PILLION_OUTPUT
-A PILLION_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A PILLION_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A PILLION_OUTPUT -o lo -j RETURN
-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN
-A PILLION_OUTPUT -d 10.96.0.1/32 -j RETURN
-A PILLION_OUTPUT -j PILLION_REDIRECT
-A PILLION_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
`,
  );
  const bad = run(['iptables', '--print', '--inbound-ports', '15006,x', '--uid', '0']);
  assert.equal(bad.status, 1);
  assert.equal(
    bad.stderr,
    `pillion iptables: PILLION_ERR_CLI_BAD_OPTION: --uid: "0" is not a user id above 0 (root's traffic must stay intercepted)
pillion iptables: PILLION_ERR_CLI_BAD_OPTION: --inbound-ports: "x" is not a port number
pillion iptables: PILLION_ERR_CLI_BAD_OPTION: --inbound-ports: 15006 is pillion's inbound listener; redirecting it would loop
`,
  );
  assert.equal(run(['iptables']).status, 1);
});

test('pillion pod up - --detach is refused: the runner would have no file to read again', () => {
  const r = run(['pod', 'up', '-', '--detach', '--state-dir', join(dir, 'state')], POD);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^PILLION_ERR_CLI_BAD_OPTION --detach needs the manifest in a file/);
});
