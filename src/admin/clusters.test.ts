// GET /clusters on the admin API: Envoy's text lines by default, JSON with ?format=json.

import assert from 'node:assert/strict';
import { get } from 'node:http';
import { test } from 'node:test';
import { AdminServer } from './server.js';

function fetchText(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    }).on('error', reject);
  });
}

test('GET /clusters: text by default (upstream::endpoint::stat::value), JSON on ?format=json', async () => {
  const clusters = [
    {
      section: 'outbound',
      name: 'inventory',
      policy: 'round-robin',
      stats: { rq_active: 1, rq_5xx: 2 },
      endpoints: [{ address: '10.0.0.7:8080', health: 'ejected', rq_total: 5, labels: { version: 'v1' } }],
    },
  ];
  const admin = new AdminServer(
    { host: '127.0.0.1', port: 0 },
    {
      readiness: () => ({ ready: true, state: 'running', checks: [] }),
      metrics: async () => ({ contentType: 'text/plain', body: [] }),
      config: async () => ({}),
      status: () => undefined,
      policies: () => ({}),
      clusters: () => clusters,
      reload: async () => ({ ok: true }),
      quit: () => {},
    },
  );
  await admin.start();
  try {
    const base = `http://127.0.0.1:${admin.address()!.port}`;
    const t = await fetchText(`${base}/clusters`);
    assert.equal(t.status, 200);
    assert.match(t.type, /^text\/plain/);
    assert.equal(
      t.body,
      [
        'outbound/inventory::rq_active::1',
        'outbound/inventory::rq_5xx::2',
        'outbound/inventory::10.0.0.7:8080::health::ejected',
        'outbound/inventory::10.0.0.7:8080::rq_total::5',
        '',
      ].join('\n'),
    );
    const j = await fetchText(`${base}/clusters?format=json`);
    assert.deepEqual(JSON.parse(j.body), { clusters });
  } finally {
    await admin.stop();
  }
});
