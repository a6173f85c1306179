// Reload of the request filters through the whole process: a changed Istio policy applies to the
// next request of an open keep-alive connection, a file that does not load keeps the running
// policy (closed, never open), and GET /policies shows what is in force.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRuntimeOn } from '../../runtime/test-support.js';
import { echoBackend, freePort, get, RawClient } from '../test-support.js';

const DENY = (path: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny, namespace: web }
spec:
  action: DENY
  rules:
  - to:
    - operation: { paths: ["${path}"] }
`;

test('a changed policy applies on open connections; a bad file keeps the old one; /policies shows it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pillion-reload-'));
  const app = await echoBackend();
  const [port, admin] = [await freePort(), await freePort()];
  const config = join(dir, 'pillion.yaml');
  await writeFile(
    config,
    `admin: { listen: "127.0.0.1:${admin}" }
app: { port: ${app.port}, health: { protocol: tcp } }
inbound:
  listeners: [{ address: "127.0.0.1:${port}" }]
  readinessGate: false
policies:
  istio: [policy.yaml]
`,
  );
  const policy = join(dir, 'policy.yaml');
  await writeFile(policy, DENY('/a'));
  const runtime = await startRuntimeOn(config);
  const c = await RawClient.connect(port);
  try {
    const status = async (path: string) => {
      c.write(get(path));
      return (await c.readResponse()).status;
    };
    assert.equal(await status('/a'), 403);
    assert.equal(await status('/b'), 200);

    await writeFile(policy, DENY('/b'));
    const ok = await runtime.reload('test');
    assert.ok(ok.ok);
    assert.equal(await status('/a'), 200, 'the same connection, the new policy');
    assert.equal(await status('/b'), 403);

    // A file that does not load: the reload is refused and /b stays denied.
    await writeFile(policy, `${DENY('/c')}  targetRef: { kind: Gateway, name: gw }\n`);
    const bad = await runtime.reload('test');
    assert.ok(!bad.ok);
    assert.match(JSON.stringify(bad), /PILLION_ERR_POLICY_UNSUPPORTED_FIELD/);
    assert.equal(await status('/b'), 403, 'the running policy stays');
    assert.equal(await status('/c'), 200);

    const view = (await (await fetch(`http://127.0.0.1:${admin}/policies`)).json()) as {
      istio: { name: string; applied: boolean }[];
      inbound: { authorization: { name: string; action: string }[] };
    };
    assert.deepEqual(
      view.istio.map((r) => `${r.name}:${r.applied}`),
      ['deny:true'],
    );
    assert.deepEqual(view.inbound.authorization, [
      { name: 'web/deny', action: 'DENY', dryRun: false, rules: 1, provider: null },
    ]);
  } finally {
    c.destroy();
    await runtime.shutdown('test');
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
});
