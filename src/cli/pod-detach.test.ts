import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';
import { findPods } from '../pod/index.js';
import { cli, podCli } from './pod-cli-harness.js';

const { root, state, pillion, manifest, remove } = podCli();
after(() => {
  spawnSync(process.execPath, [cli, 'pod', 'down', 'svc', '--state-dir', state]);
  remove();
});

// A detached pod driven from other processes, as from another terminal. A file of its own: each
// CLI command is a Node process, and on a busy machine this one test takes a good part of the
// runner's per-file limit.

test('up --detach runs in the background; status, logs and down work from other processes', async () => {
  const file = manifest(
    'svc',
    `apiVersion: v1
kind: Pod
metadata: { name: svc }
spec:
  terminationGracePeriodSeconds: 5
  nodeSelector: { disk: ssd }
  initContainers:
    - name: side
      restartPolicy: Always
      command: [sh, -c, "echo side says hi; trap 'echo side-term >> $DIR/order; exit 0' TERM; while :; do sleep 0.05; done"]
  containers:
    - name: app
      command: [sh, -c, "echo run $(cat $DIR/runs 2>/dev/null); echo x >> $DIR/runs; [ $(wc -l < $DIR/runs) -ge 2 ] || exit 4; trap 'echo app-term >> $DIR/order; exit 0' TERM; while :; do sleep 0.05; done"]
`,
  );
  const up = pillion('pod', 'up', file, '--detach', '--backoff-base', '100ms');
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stdout, /^pod\/svc started in the background/);
  assert.match(up.stderr, /PILLION_ERR_POD_UNSUPPORTED_FIELD spec\.nodeSelector/);

  // Waiting reads the status file (a CLI process per poll is slow on a busy machine); the
  // assertions below go through the CLI.
  await waitFor(
    () => {
      const [p] = findPods(state, 'svc');
      return p?.status.phase === 'Running' && p.status.containers.every((c) => c.ready);
    },
    { what: 'Running 2/2', timeoutMs: 30_000 },
  );
  const status = pillion('pod', 'status', 'svc').stdout;
  assert.match(
    status,
    /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\nsvc\s+2\/2\s+Running\s+1 \(\d+s ago\)\s+\d+s\n/,
    status,
  );
  assert.match(status, /\napp\s+main\s+Running\s+true\s+1 \(\d+s ago\)\s+\S+\s+4\s+Error\n/, status);
  assert.match(status, /\nside\s+sidecar\s+Running\s+true\s+0 /);
  assert.match(
    pillion('pod', 'status', 'svc', '-o', 'wide').stdout,
    /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+KIND\s+FILE\nsvc\s+2\/2\s+Running\s+1 \(\d+s ago\)\s+\d+s\s+127\.0\.0\.1\s+\S+\s+Pod\s+\S+svc\.yaml\n/,
  );
  assert.match(pillion('pod', 'list').stdout, /default\s+svc\s+2\/2\s+Running\s+1 \(/);
  const yaml = pillion('pod', 'status', 'svc', '-o', 'yaml').stdout;
  assert.match(yaml, /^- name: svc\n/);
  assert.match(yaml, /\n {2}runnerAlive: true\n/);

  const again = pillion('pod', 'up', file);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /PILLION_ERR_POD_ALREADY_RUNNING/);

  assert.equal(pillion('pod', 'logs', 'svc', 'app').stdout, 'run x\n');
  assert.equal(pillion('pod', 'logs', 'svc', 'app', '--previous').stdout, 'run\n');
  const side = pillion('pod', 'logs', 'svc', 'side', '--timestamps');
  assert.match(side.stdout, /^\d{4}-\d\d-\d\dT\S+Z side says hi\n$/);
  const dflt = pillion('pod', 'logs', 'svc');
  assert.match(dflt.stderr, /Defaulted container "app" out of: side, app/);

  // -f follows until the pod ends
  const follow = spawn(process.execPath, [cli, 'pod', 'logs', 'svc', 'app', '-f', '--state-dir', state]);
  let followed = '';
  follow.stdout.on('data', (b) => {
    followed += b;
  });
  await waitFor(() => followed.includes('run x'), {
    what: 'follow prints existing lines',
    timeoutMs: 30_000,
  });

  const down = pillion('pod', 'down', 'svc');
  assert.equal(down.status, 0, down.stderr);
  assert.equal(down.stdout, 'pod/svc deleted\n');
  assert.deepEqual(readFileSync(join(root, 'order'), 'utf8').trim().split('\n'), ['app-term', 'side-term']);
  await new Promise((r) => follow.on('exit', r));
  assert.match(pillion('pod', 'status', 'svc').stderr, /PILLION_ERR_POD_NOT_FOUND/);
});
