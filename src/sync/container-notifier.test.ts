import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../lib/wait-for.js';
import { containerOf, removeTestDirs, startPod } from '../pod/test-support.js';

// A real pod run by the pod runner: one container counts the SIGHUPs it gets, the other is
// `pillion run` whose sync section tells it of each change by the container's name. Every step
// awaits what it expects; nothing is timed.
after(removeTestDirs);

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));

test('under pillion pod, sync signals a container of the same pod by name, at its current pid across a restart', async () => {
  const h = startPod(`  containers:
    - name: app
      command: [sh, -c, "trap 'echo hup $$$$ >> $EV' HUP; echo up $$$$ >> $EV; while :; do sleep 0.01; done"]
    - name: pillion
      command: [node, ${main}, run, -c, $DIR/pillion.yaml]
`);
  const input = join(h.dir, 'in.json');
  const output = join(h.dir, 'out.json');
  writeFileSync(input, '{"level": 1}\n');
  writeFileSync(
    join(h.dir, 'pillion.yaml'),
    `admin: { listen: 127.0.0.1:0 }
sync:
  sources:
    settings: { type: file, path: ${input}, parse: json }
  destinations:
    settings: { path: ${output}, source: settings, format: json }
  notify:
    app: { type: signal, container: app, signal: SIGHUP }
`,
  );
  const hups = (pid: number) => h.events().filter((e) => e === `hup ${pid}`).length;
  const running = (name: string) => {
    const c = containerOf(h.status(), name);
    return c.state === 'running' ? c : undefined;
  };
  const app = await waitFor(() => running('app'), { what: 'app running', timeoutMs: 30_000 });
  const pid1 = app.pid!;
  // The first render writes the file and tells the app.
  await waitFor(() => hups(pid1) === 1, {
    what: `first SIGHUP (events: ${h.events().join(', ')})`,
    timeoutMs: 30_000,
  });
  assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), { level: 1 });

  writeFileSync(input, '{"level": 2}\n');
  await waitFor(() => hups(pid1) === 2, { what: 'SIGHUP after a change', timeoutMs: 30_000 });
  assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), { level: 2 });

  // The app's container restarts with another pid: the next change reaches the new process.
  process.kill(-pid1, 'SIGKILL');
  const again = await waitFor(
    () => {
      const c = running('app');
      return c && c.pid !== pid1 && c.restartCount === 1 ? c : undefined;
    },
    { what: 'app restarted', timeoutMs: 30_000 },
  );
  const pid2 = again.pid!;
  await waitFor(() => h.events().includes(`up ${pid2}`), { what: 'restarted app up' });
  writeFileSync(input, '{"level": 3}\n');
  await waitFor(() => hups(pid2) === 1, { what: 'SIGHUP to the restarted app', timeoutMs: 30_000 });
  assert.equal(hups(pid1), 2, 'the old process got nothing more');
  assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), { level: 3 });
  // The pillion container was told which pod it runs in, and never restarted.
  assert.equal(containerOf(h.status(), 'pillion').restartCount, 0);
  await h.sup.terminate();
  await h.run;
});
