import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Glob, globFiles } from './glob.js';

describe('Glob.matches', () => {
  const cases: [string, string, boolean][] = [
    ['/var/log/*.log', '/var/log/app.log', true],
    ['/var/log/*.log', '/var/log/app.log.1', false],
    ['/var/log/*.log', '/var/log/sub/app.log', false],
    ['/var/log/app.log*', '/var/log/app.log.2026', true],
    ['/var/log/a?c.log', '/var/log/abc.log', true],
    ['/var/log/a?c.log', '/var/log/ac.log', false],
    ['/var/log/[ab]*.log', '/var/log/b1.log', true],
    ['/var/log/[!ab]*.log', '/var/log/b1.log', false],
    ['/var/log/[!ab]*.log', '/var/log/c1.log', true],
    ['/var/log/app-[0-9].log', '/var/log/app-7.log', true],
    ['/var/log/**/*.log', '/var/log/app.log', true],
    ['/var/log/**/*.log', '/var/log/pods/ns_pod/c/0.log', true],
    ['/var/log/**', '/var/log/x/y', true],
    ['/var/log/(x).log', '/var/log/(x).log', true],
    ['/var/log/a.log', '/var/log/aXlog', false],
  ];
  for (const [pattern, path, want] of cases) {
    test(`${pattern} ${want ? 'matches' : 'does not match'} ${path}`, () => {
      assert.equal(new Glob(pattern).matches(path), want);
    });
  }

  test('a relative pattern is taken from the working directory', () => {
    const g = new Glob('logs/*.log', '/srv/app');
    assert.equal(g.base, '/srv/app/logs');
    assert.ok(g.matches('/srv/app/logs/x.log'));
  });
});

describe('globFiles', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'pillion-glob-'));
    for (const d of ['a', 'a/b', 'a/b/c', 'pods/ns_p1/app', 'pods/ns_p2/app'])
      mkdirSync(join(root, d), { recursive: true });
    for (const f of [
      'x.log',
      'x.log.1',
      'y.txt',
      'a/1.log',
      'a/b/2.log',
      'a/b/c/3.log',
      'pods/ns_p1/app/0.log',
    ])
      writeFileSync(join(root, f), '');
    writeFileSync(join(root, 'pods/ns_p2/app/0.log'), '');
    mkdirSync(join(root, 'containers'));
    symlinkSync(join(root, 'pods/ns_p1/app/0.log'), join(root, 'containers/p1.log'));
    symlinkSync(join(root, 'missing'), join(root, 'containers/dangling.log'));
    // A directory loop through a symbolic link must not be followed by `**`.
    symlinkSync(root, join(root, 'a/loop'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const rel = (paths: string[]): string[] => paths.map((p) => p.slice(root.length + 1));

  test('* and literal paths', async () => {
    assert.deepEqual(rel(await globFiles([new Glob(`${root}/*.log`)], [])), ['x.log']);
    assert.deepEqual(rel(await globFiles([new Glob(`${root}/x.log*`)], [])), ['x.log', 'x.log.1']);
    assert.deepEqual(rel(await globFiles([new Glob(`${root}/y.txt`), new Glob(`${root}/none.txt`)], [])), [
      'y.txt',
    ]);
  });

  test('** at any depth, without following directory links', async () => {
    assert.deepEqual(rel(await globFiles([new Glob(`${root}/a/**/*.log`)], [])), [
      'a/1.log',
      'a/b/2.log',
      'a/b/c/3.log',
    ]);
  });

  test('wildcards in directories, symlinked files followed, dangling links skipped', async () => {
    assert.deepEqual(rel(await globFiles([new Glob(`${root}/pods/*/app/*.log`)], [])), [
      'pods/ns_p1/app/0.log',
      'pods/ns_p2/app/0.log',
    ]);
    assert.deepEqual(rel(await globFiles([new Glob(`${root}/containers/*.log`)], [])), ['containers/p1.log']);
  });

  test('exclude patterns remove matches', async () => {
    const got = await globFiles(
      [new Glob(`${root}/**/*.log`)],
      [new Glob(`${root}/pods/**`), new Glob(`${root}/a/b/*`)],
    );
    assert.deepEqual(rel(got), ['a/1.log', 'a/b/c/3.log', 'containers/p1.log', 'x.log']);
  });
});
