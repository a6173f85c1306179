#!/usr/bin/env node
// The inventory service the orders app asks for stock: one replica per process, plain HTTP, a line
// of log per request. GET /stock/<item> answers { item, available, replica }; GET /healthz 200.
// A flaky replica (FAIL_PERCENT above 0) answers that share of its stock requests with 503, in bad
// spells (in tenths: 50 fails the first 5 of every 10 in a row), as a replica with a struggling
// database does, while its /healthz stays fine: the kind of failure only the answers show, which
// the sidecar's retries and outlier detection handle.

import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 9201);
const host = process.env.HOST ?? '127.0.0.1';
const replica = process.env.REPLICA ?? `inventory-${port}`;
const failPercent = Number(process.env.FAIL_PERCENT ?? 0);

const stock = { book: 12, pen: 40, lamp: 3, chair: 0 };
let stockRequests = 0;

function log(message) {
  console.log(`${new Date().toISOString().replace('T', ' ').slice(0, 19)} INFO ${replica} ${message}`);
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  // The sidecar numbers the tries of one request: 2 and up are its retries.
  const attempt = req.headers['x-pillion-attempt-count'];
  res.on('finish', () =>
    log(`${req.method} ${req.url} ${res.statusCode}${attempt !== undefined ? ` attempt=${attempt}` : ''}`),
  );
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/healthz') return send(res, 200, { status: 'ok', replica });
  const m = /^\/stock\/([a-z0-9-]+)$/.exec(url.pathname);
  if (m && req.method === 'GET') {
    if ((stockRequests++ % 10) * 10 < failPercent)
      return send(res, 503, { error: 'inventory database unavailable', replica });
    return send(res, 200, { item: m[1], available: stock[m[1]] ?? 0, replica });
  }
  send(res, 404, { error: 'not found' });
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});

server.listen(port, host, () =>
  log(
    `listening on http://${host}:${port}${failPercent > 0 ? ` (failing ${failPercent}% of stock requests)` : ''}`,
  ),
);
