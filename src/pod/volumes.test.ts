import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseManifest } from './manifest.js';
import { projectAtomically, Volumes } from './volumes.js';

const file = (path: string, text: string, mode = 0o644) => ({ path, data: Buffer.from(text), mode });

test('files are projected through a ..data symlink, as the kubelet does', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-vol-'));
  assert.equal(projectAtomically(dir, [file('a.txt', 'one'), file('nested/b.txt', 'two', 0o400)]), true);
  const data = readlinkSync(join(dir, '..data'));
  assert.match(data, /^\.\.\d{4}_/);
  assert.equal(readlinkSync(join(dir, 'a.txt')), '..data/a.txt');
  assert.equal(readlinkSync(join(dir, 'nested')), '..data/nested');
  assert.equal(readFileSync(join(dir, 'nested/b.txt'), 'utf8'), 'two');
  assert.equal(statSync(join(dir, 'nested/b.txt')).mode & 0o777, 0o400);
});

test('an update swaps ..data atomically, drops removed keys and the old directory; same content writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-vol-'));
  projectAtomically(dir, [file('a.txt', 'one'), file('gone.txt', 'x')]);
  const first = readlinkSync(join(dir, '..data'));
  assert.equal(projectAtomically(dir, [file('a.txt', 'one'), file('gone.txt', 'x')]), false);
  assert.equal(readlinkSync(join(dir, '..data')), first);

  assert.equal(projectAtomically(dir, [file('a.txt', 'two')]), true);
  const second = readlinkSync(join(dir, '..data'));
  assert.notEqual(second, first);
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'two');
  assert.throws(() => lstatSync(join(dir, 'gone.txt')));
  assert.deepEqual(readdirSync(dir).sort(), ['..data', second, 'a.txt'].sort());
});

test('item paths may not escape the volume', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-vol-'));
  for (const bad of ['/etc/passwd', '../x', 'a/../../x', '..data']) {
    assert.throws(() => projectAtomically(dir, [file(bad, 'x')]), /must be relative/, bad);
  }
});

test('regression: a downwardAPI volume shows a container resource (resourceFieldRef) as a file', () => {
  const r = parseManifest(
    `apiVersion: v1
kind: Pod
metadata: { name: web }
spec:
  volumes:
    - name: info
      downwardAPI:
        items:
          - { path: mem_mi, resourceFieldRef: { containerName: app, resource: limits.memory, divisor: 1Mi } }
          - { path: cpu, resourceFieldRef: { containerName: app, resource: limits.cpu } }
  containers:
    - name: app
      command: ["true"]
      resources: { limits: { memory: 256Mi } }
`,
    'pod.yaml',
  );
  assert.ok(r.ok);
  const root = mkdtempSync(join(tmpdir(), 'pillion-vol-'));
  const volumes = new Volumes(r.manifest, root, () => {}, { cpu: 4, memory: 1 });
  volumes.prepare();
  assert.equal(readFileSync(join(root, 'info', 'mem_mi'), 'utf8'), '256');
  assert.equal(readFileSync(join(root, 'info', 'cpu'), 'utf8'), '4', 'no CPU limit: the node allocatable');
});
