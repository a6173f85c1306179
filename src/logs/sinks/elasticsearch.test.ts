import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ElasticsearchSinkConfig, logsSchema } from '../config.js';
import {
  ES_MAPPER_PARSING,
  ES_REJECTED,
  type EsReceiver,
  startElasticsearchReceiver,
} from '../test-support/receivers.js';
import type { LogEvent, SendOutcome } from '../types.js';
import { createElasticsearchDriver } from './elasticsearch.js';

const never = new AbortController().signal;

function config(raw: Record<string, unknown>): ElasticsearchSinkConfig {
  const logs = logsSchema.parse({
    sources: { app: { type: 'stdin' } },
    sinks: { es: { type: 'elasticsearch', ...raw } },
  });
  return logs.sinks.es as ElasticsearchSinkConfig;
}

const events = (n: number, tag = 'e'): LogEvent[] =>
  Array.from({ length: n }, (_, i) => ({
    message: `${tag}${i}`,
    i,
    kind: i % 3 === 0 ? 'bad' : i % 3 === 1 ? 'busy' : 'good',
  }));

describe('Elasticsearch driver', () => {
  let es: EsReceiver;
  before(async () => {
    es = await startElasticsearchReceiver();
  });
  after(async () => {
    await es.close();
  });

  test('a bulk request of create lines with NDJSON documents; errors:false is ok', async () => {
    const d = createElasticsearchDriver(config({ url: `${es.url}/`, index: 'logs-app' }));
    const batch = events(5);
    const copy = structuredClone(batch);
    assert.deepEqual(await d.send(batch, never), { kind: 'ok' });
    assert.deepEqual(batch, copy, 'events are not mutated');
    const req = es.requests.at(-1)!;
    assert.match(req.url, /^\/_bulk\?filter_path=/);
    assert.equal(req.headers['content-type'], 'application/x-ndjson');
    assert.equal(req.headers['content-encoding'], 'gzip');
    assert.equal(req.headers.authorization, undefined);
    const lines = req.body.toString().split('\n');
    assert.equal(lines[0], '{"create":{"_index":"logs-app"}}');
    assert.deepEqual(JSON.parse(lines[1]!), batch[0]);
    assert.equal(lines.length, 11, 'five pairs and the final newline');
    assert.deepEqual(
      es.documents.slice(-5).map((d) => d.doc),
      batch,
    );
    await d.close();
  });

  test('errors:true splits the batch: 429/5xx/rejected execution are retried, mapping errors dead-lettered', async () => {
    const d = createElasticsearchDriver(
      config({ url: es.url, index: 'logs', action: 'index', compression: 'none' }),
    );
    es.failItems((doc) =>
      doc.kind === 'bad'
        ? ES_MAPPER_PARSING
        : doc.kind === 'busy'
          ? (doc.i as number) % 2 === 0
            ? ES_REJECTED
            : { status: 503, type: 'unavailable_shards_exception', reason: 'primary shard is not active' }
          : undefined,
    );
    const before = es.documents.length;
    const batch = events(9);
    const o = await d.send(batch, never);
    es.failItems(undefined);
    assert.equal(o.kind, 'partial');
    if (o.kind !== 'partial') return;
    assert.deepEqual(
      o.retry.map((e) => e.message),
      ['e1', 'e4', 'e7'],
    );
    assert.equal(o.retry[0], batch[1], 'the very event objects are handed back');
    assert.deepEqual(
      o.reject.map((r) => r.event.message),
      ['e0', 'e3', 'e6'],
    );
    assert.match(
      o.reject[0]!.reason,
      /^status 400 mapper_parsing_exception: failed to parse field \[status\]/,
    );
    assert.deepEqual(
      es.documents.slice(before).map((x) => x.doc.message),
      ['e2', 'e5', 'e8'],
    );
    assert.equal(es.documents.at(-1)!.action, 'index');
    await d.close();
  });

  test('whole-request 429 and 5xx are retried, 4xx are permanent, an unexpected reply shape too', async () => {
    const d = createElasticsearchDriver(config({ url: es.url, index: 'logs' }));
    es.script(
      {
        status: 429,
        body: '{"error":{"type":"es_rejected_execution_exception","reason":"busy"},"status":429}',
        headers: { 'retry-after': '2' },
      },
      503,
      {
        status: 400,
        body: '{"error":{"type":"illegal_argument_exception","reason":"bad index"},"status":400}',
      },
      { status: 200, body: '{"errors":true,"items":[]}' },
      { status: 200, body: '<html>proxy</html>' },
    );
    const outcomes: SendOutcome[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(await d.send(events(2), never));
    assert.deepEqual(outcomes[0], {
      kind: 'failed',
      retry: true,
      reason: 'HTTP 429 (Retry-After: 2): es_rejected_execution_exception: busy',
      status: 429,
    });
    assert.deepEqual(outcomes[1], { kind: 'failed', retry: true, reason: 'HTTP 503', status: 503 });
    assert.deepEqual(outcomes[2], {
      kind: 'failed',
      retry: false,
      reason: 'HTTP 400: illegal_argument_exception: bad index',
      status: 400,
    });
    assert.deepEqual(outcomes[3], {
      kind: 'failed',
      retry: false,
      reason: 'the bulk reply holds 0 items for 2 events',
      status: 200,
    });
    assert.equal(outcomes[4]!.kind === 'failed' && outcomes[4]!.retry, true);
    await d.close();
  });

  test('basic auth or an API key; neither ever appears in a reason', async () => {
    const secured = await startElasticsearchReceiver({ authorization: 'ApiKey c2VjcmV0LWtleQ==' });
    try {
      const ok = createElasticsearchDriver(
        config({ url: secured.url, index: 'i', apiKey: 'c2VjcmV0LWtleQ==' }),
      );
      assert.deepEqual(await ok.send(events(1), never), { kind: 'ok' });
      const basic = createElasticsearchDriver(
        config({ url: secured.url, index: 'i', user: 'elastic', password: 'changeme-123' }),
      );
      secured.script({ status: 401, body: 'denied: Basic ZWxhc3RpYzpjaGFuZ2VtZS0xMjM= changeme-123' });
      const denied = await basic.send(events(1), never);
      assert.equal(denied.kind, 'failed');
      if (denied.kind !== 'failed') return;
      assert.equal(denied.retry, false);
      assert.equal(secured.requests.at(-1)!.headers.authorization, 'Basic ZWxhc3RpYzpjaGFuZ2VtZS0xMjM=');
      assert.ok(
        !denied.reason.includes('changeme-123') && !denied.reason.includes('ZWxhc3RpYzpjaGFuZ2VtZS0xMjM='),
        denied.reason,
      );
      const wrongKey = createElasticsearchDriver(
        config({ url: secured.url, index: 'i', apiKey: 'd3Jvbmcta2V5' }),
      );
      const o = await wrongKey.send(events(1), never);
      assert.ok(o.kind === 'failed' && !o.retry && !o.reason.includes('d3Jvbmcta2V5'));
      await Promise.all([ok.close(), basic.close(), wrongKey.close()]);
    } finally {
      await secured.close();
    }
  });

  test('an event JSON cannot encode is dead-lettered, the rest stored', async () => {
    const d = createElasticsearchDriver(config({ url: es.url, index: 'logs' }));
    const big = { message: 'big', n: 1n };
    const o = await d.send([{ message: 'a' }, big, { message: 'b' }], never);
    assert.equal(o.kind, 'partial');
    if (o.kind !== 'partial') return;
    assert.deepEqual(o.retry, []);
    assert.equal(o.reject.length, 1);
    assert.equal(o.reject[0]!.event, big);
    assert.deepEqual(
      es.documents.slice(-2).map((x) => x.doc.message),
      ['a', 'b'],
    );
    await d.close();
  });
});
