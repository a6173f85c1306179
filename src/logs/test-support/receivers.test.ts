import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import {
  ES_REJECTED,
  lokiStreamKey,
  startElasticsearchReceiver,
  startHttpReceiver,
  startLokiReceiver,
} from './receivers.js';

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await request(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  return { status: res.statusCode, text: await res.body.text() };
}

test('the generic receiver decodes NDJSON, JSON arrays and gzip, and answers as scripted', async () => {
  const rx = await startHttpReceiver();
  try {
    assert.equal((await post(`${rx.url}/a`, '{"a":1}\n{"a":2}\n')).status, 200);
    assert.equal(
      (await post(`${rx.url}/b`, gzipSync('[{"a":3}]'), { 'content-encoding': 'gzip' })).status,
      200,
    );
    rx.script(503, { status: 429, body: 'slow', headers: { 'retry-after': '1' } });
    assert.equal((await post(rx.url, '{"a":4}')).status, 503);
    assert.deepEqual(await post(rx.url, '{"a":5}'), { status: 429, text: 'slow' });
    assert.equal((await post(rx.url, 'not json')).status, 400);
    assert.equal((await post(rx.url, Buffer.from('junk'), { 'content-encoding': 'gzip' })).status, 400);
    assert.deepEqual(rx.events, [{ a: 1 }, { a: 2 }, { a: 3 }]);
    assert.deepEqual(
      rx.requests.map((r) => r.status),
      [200, 200, 503, 429, 400, 400],
    );
    assert.equal(rx.requests[1]!.body.toString(), '[{"a":3}]');
  } finally {
    await rx.close();
  }
});

test('the Elasticsearch receiver checks bulk bodies like Elasticsearch and fails items on request', async () => {
  const es = await startElasticsearchReceiver();
  try {
    const nd = { 'content-type': 'application/x-ndjson' };
    assert.equal(
      (await post(`${es.url}/_bulk`, '{"create":{"_index":"i"}}\n{"a":1}', nd)).status,
      400,
      'no final newline',
    );
    assert.equal((await post(`${es.url}/_bulk`, '{"create":{}}\n{"a":1}\n', nd)).status, 400, 'no _index');
    assert.equal((await post(`${es.url}/_bulk`, '{"a":1}\n', { 'content-type': 'text/plain' })).status, 406);
    assert.equal((await post(`${es.url}/other`, '{}\n', nd)).status, 404);
    es.failItems((doc) => (doc.a === 2 ? ES_REJECTED : undefined));
    const ok = await post(
      `${es.url}/_bulk`,
      '{"create":{"_index":"i"}}\n{"a":1}\n{"index":{"_index":"j"}}\n{"a":2}\n',
      nd,
    );
    assert.equal(ok.status, 200);
    const reply = JSON.parse(ok.text) as { errors: boolean; items: Record<string, { status: number }>[] };
    assert.equal(reply.errors, true);
    assert.deepEqual(
      reply.items.map((i) => Object.entries(i).map(([k, v]) => [k, v.status])[0]),
      [
        ['create', 201],
        ['index', 429],
      ],
    );
    assert.deepEqual(es.documents, [{ action: 'create', index: 'i', doc: { a: 1 } }]);
  } finally {
    await es.close();
  }
});

test('the Loki receiver checks the push shape and refuses out-of-order entries per stream', async () => {
  const loki = await startLokiReceiver();
  const push = (streams: unknown) => post(`${loki.url}/loki/api/v1/push`, JSON.stringify({ streams }));
  try {
    assert.equal((await push([{ stream: {}, values: [['1', 'x']] }])).status, 400, 'no labels');
    assert.equal((await push([{ stream: { a: 'b' }, values: [[1, 'x']] }])).status, 400, 'numeric timestamp');
    assert.equal((await push([{ stream: { 'a-b': 'c' }, values: [] }])).status, 400, 'label name');
    assert.equal(
      (
        await push([
          {
            stream: { a: 'b' },
            values: [
              ['10', 'x'],
              ['20', 'y'],
            ],
          },
        ])
      ).status,
      204,
    );
    // Another stream may go back in time; the same stream may not.
    assert.equal((await push([{ stream: { a: 'c' }, values: [['5', 'z']] }])).status, 204);
    const late = await push([
      {
        stream: { a: 'b' },
        values: [
          ['15', 'old'],
          ['30', 'new'],
        ],
      },
    ]);
    assert.equal(late.status, 400);
    assert.match(late.text, /entry out of order/);
    assert.deepEqual(
      loki.streams.get(lokiStreamKey({ a: 'b' }))!.map((e) => [e.ts, e.line]),
      [
        [10n, 'x'],
        [20n, 'y'],
        [30n, 'new'],
      ],
    );
    assert.equal(loki.entries.length, 4);
  } finally {
    await loki.close();
  }
});
