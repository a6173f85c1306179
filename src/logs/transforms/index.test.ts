import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { appendsOnly, compileTransforms, type TransformDeps } from './index.js';

function deps(reads: string[] = []): TransformDeps {
  return {
    hostname: 'h',
    env: { POD_NAME: 'p' },
    clock: new FakeClock(0),
    readFile: (path) => {
      reads.push(path);
      return 'app="x"\n';
    },
  };
}

describe('compileTransforms', () => {
  const configs: TransformConfig[] = [
    { type: 'enrich', fields: { all: 'yes' } },
    { type: 'rename', sources: ['app'], fields: { msg: 'message' } },
    { type: 'filter', sources: ['app', 'audit'], action: 'drop', field: 'level', equals: ['debug'] },
    { type: 'enrich', sources: ['audit'], fields: { audited: 'true' } },
  ];

  test('one chain per source, holding only the transforms that apply to it, in order', () => {
    const chains = compileTransforms(configs, ['app', 'audit', 'other'], deps());
    assert.deepEqual([...chains.keys()], ['app', 'audit', 'other']);
    const app = chains.get('app')!([{ msg: 'a' }, { msg: 'b', level: 'debug' }]);
    assert.deepEqual(app, [{ all: 'yes', message: 'a' }]);
    const audit = chains.get('audit')!([{ msg: 'c', level: 'info' }]);
    assert.deepEqual(audit, [{ msg: 'c', level: 'info', all: 'yes', audited: 'true' }]);
    const other = chains.get('other')!([{ msg: 'd', level: 'debug' }]);
    assert.deepEqual(other, [{ msg: 'd', level: 'debug', all: 'yes' }]);
  });

  test('the same array comes back when nothing is dropped, also with no transform at all', () => {
    const chains = compileTransforms(configs, ['app', 'none'], deps());
    const events: LogEvent[] = [{ msg: 'a', level: 'info' }];
    assert.equal(chains.get('app')!(events), events);
    const none = compileTransforms([], ['none'], deps()).get('none')!;
    assert.equal(none(events), events);
  });

  test('a filter that drops everything ends the chain with an empty array', () => {
    const chains = compileTransforms(
      [
        { type: 'filter', action: 'keep', field: 'level', equals: ['error'] },
        { type: 'enrich', fields: {}, hostname: 'host' },
      ],
      ['app'],
      deps(),
    );
    const events: LogEvent[] = [{ level: 'info' }, { message: 'x' }];
    assert.deepEqual(chains.get('app')!(events), []);
    assert.deepEqual(events, [{ level: 'info' }, { message: 'x' }]);
  });

  test('each transform is compiled once: the labels file is read once for every source', () => {
    const reads: string[] = [];
    const chains = compileTransforms(
      [{ type: 'enrich', fields: {}, kubernetes: { field: 'k8s', labelsFile: '/etc/podinfo/labels' } }],
      ['a', 'b'],
      deps(reads),
    );
    assert.deepEqual(chains.get('a')!([{}]), [{ k8s: { pod: 'p', labels: { app: 'x' } } }]);
    assert.deepEqual(chains.get('b')!([{}]), [{ k8s: { pod: 'p', labels: { app: 'x' } } }]);
    assert.deepEqual(reads, ['/etc/podinfo/labels']);
  });

  test('every transform type in one chain', () => {
    const chain = compileTransforms(
      [
        { type: 'rename', fields: { ts: 'time' } },
        { type: 'timestamp', field: 'time', format: 'auto', target: 'timestamp' },
        { type: 'redact', patterns: ['email'], replacement: '***' },
        { type: 'remove', fields: ['time'] },
        { type: 'enrich', fields: { env: 'prod' }, hostname: 'host', collectedAt: 'collected' },
        { type: 'keep', fields: ['message', 'timestamp', 'env', 'host', 'collected'] },
        { type: 'filter', action: 'drop', field: 'message', matches: '^health' },
      ],
      ['s'],
      deps(),
    ).get('s')!;
    assert.deepEqual(
      chain([
        { ts: 1_700_000_000, message: 'login a@b.io', extra: 1 },
        { ts: 1, message: 'healthcheck' },
      ]),
      [
        {
          message: 'login ***',
          timestamp: '2023-11-14T22:13:20.000Z',
          env: 'prod',
          host: 'h',
          collected: '1970-01-01T00:00:00.000Z',
        },
      ],
    );
  });

  test("appendsOnly: only enrich (setting each name once) and filter keep a source's raw JSON text", () => {
    const enrich = { type: 'enrich', fields: { env: 'prod' }, hostname: 'host' } as const;
    const filter = { type: 'filter', action: 'drop', field: 'level', equals: ['debug'] } as const;
    assert.equal(appendsOnly([], 'app'), true);
    assert.equal(appendsOnly([enrich, filter] as TransformConfig[], 'app'), true);
    for (const other of [
      { type: 'rename', fields: { a: 'b' } },
      { type: 'remove', fields: ['a'] },
      { type: 'keep', fields: ['a'] },
      { type: 'redact', patterns: ['email'] },
      { type: 'timestamp', field: 'time' },
    ]) {
      assert.equal(appendsOnly([enrich, other] as TransformConfig[], 'app'), false, other.type);
      assert.equal(
        appendsOnly([{ ...other, sources: ['audit'] }] as TransformConfig[], 'app'),
        true,
        'not its source',
      );
    }
    const twice = { type: 'enrich', fields: { host: 'x' }, hostname: 'host' };
    assert.equal(appendsOnly([twice] as TransformConfig[], 'app'), false, 'a name set twice');
  });
});
