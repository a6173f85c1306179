#!/usr/bin/env node
// A legacy orders service, as found in the wild: plain HTTP on localhost, text logs to stdout and
// to a file, request counts as JSON at /internal/metrics, config.json re-read on SIGHUP, no TLS,
// no auth code (it trusts X-User-Id and X-User-Roles, as apps behind an auth proxy do, and its
// /admin page trusts the network), no health endpoint of its own, a slow start, and no patience
// with a bad config: with a discountPercent that is not a percentage it stops serving until SIGHUP
// brings one it can use. It asks the inventory service for stock (GET /stock/<item>) with one
// plain HTTP call and no retry code, at INVENTORY_URL: its sidecar's outbound listener, which
// balances, retries and takes failing replicas out. Pillion makes it modern without changing a line of it.

import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, get as httpGet } from 'node:http';
import { fileURLToPath } from 'node:url';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const logFile = process.env.LOG_FILE ?? 'orders.log';
// Beside this script, so `node examples/legacy-orders/app.mjs` finds it from the repository root.
const configFile = process.env.CONFIG_FILE ?? fileURLToPath(new URL('config.json', import.meta.url));
const startupDelay = Number(process.env.STARTUP_DELAY_MS ?? 1500);
// The inventory service, through the sidecar: its outbound listener, the upstream's name as the prefix.
const inventoryUrl = process.env.INVENTORY_URL ?? 'http://127.0.0.1:15001/inventory';

let config = { currency: 'EUR', discountPercent: 0 };
const orders = new Map();
const counters = { requests_total: 0, errors_total: 0, orders_created_total: 0 };
let nextId = 1;

function log(level, message) {
  const line = `${new Date().toISOString().replace('T', ' ').slice(0, 19)} ${level} ${message}`;
  console.log(line);
  try {
    appendFileSync(logFile, `${line}\n`);
  } catch {
    // the log file is best effort, as in the original
  }
}

let usable = true;
let warm = false;

function loadConfig() {
  try {
    config = { ...config, ...JSON.parse(readFileSync(configFile, 'utf8')) };
  } catch (err) {
    log('WARN', `cannot read ${configFile} (${err.code ?? err.message}); keeping current settings`);
    return;
  }
  const d = config.discountPercent;
  usable = typeof d === 'number' && d >= 0 && d <= 100;
  if (!usable) {
    log(
      'ERROR',
      `${configFile}: discountPercent ${JSON.stringify(d)} is not a percentage; not serving until SIGHUP brings a config I can use`,
    );
  } else {
    log('INFO', `loaded ${configFile}: currency=${config.currency} discountPercent=${d}`);
  }
  if (warm) serveIfUsable();
}

// While it does not serve, a timer keeps the process waiting for its SIGHUP.
let waiting;
function serveIfUsable() {
  if (usable && !server.listening) {
    clearInterval(waiting);
    server.listen(port, host, () => log('INFO', `orders listening on http://${host}:${port}`));
  } else if (!usable && server.listening) {
    waiting = setInterval(() => {}, 1 << 30);
    server.close();
  }
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  const started = Date.now();
  counters.requests_total++;
  res.on('finish', () => {
    if (res.statusCode >= 500) counters.errors_total++;
    const user = req.headers['x-user-id'];
    log(
      'INFO',
      `${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms${user ? ` user=${user}` : ''}`,
    );
  });
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/internal/metrics') return send(res, 200, { ...counters, orders: orders.size });
  if (url.pathname === '/' && req.method === 'GET')
    return send(res, 200, { service: 'orders', version: '1.0' });
  if (url.pathname === '/orders' && req.method === 'GET') return send(res, 200, [...orders.values()]);
  if (url.pathname === '/admin' && req.method === 'GET')
    return send(res, 200, {
      page: 'admin',
      user: req.headers['x-user-id'] ?? null,
      roles: req.headers['x-user-roles']?.split(',') ?? [],
      orders: orders.size,
    });
  if (url.pathname === '/orders' && req.method === 'POST') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      let item;
      try {
        item = JSON.parse(body || '{}');
      } catch {
        log('ERROR', `bad order payload: ${body.slice(0, 80)}`);
        return send(res, 400, { error: 'invalid JSON' });
      }
      const amount = Number(item.amount ?? 0);
      const order = {
        id: nextId++,
        item: String(item.item ?? 'unknown'),
        amount: Math.round(amount * (100 - config.discountPercent)) / 100,
        currency: config.currency,
      };
      orders.set(order.id, order);
      counters.orders_created_total++;
      send(res, 201, order);
    });
    return;
  }
  const stock = /^\/stock\/([a-z0-9-]+)$/.exec(url.pathname);
  if (stock && req.method === 'GET') return askInventory(stock[1], res);
  const m = /^\/orders\/(\d+)$/.exec(url.pathname);
  if (m && req.method === 'GET') {
    const order = orders.get(Number(m[1]));
    return order ? send(res, 200, order) : send(res, 404, { error: 'no such order' });
  }
  send(res, 404, { error: 'not found' });
});

/** One call, no retry: what the inventory answers (or that it could not be reached) goes to the caller. */
function askInventory(item, res) {
  const call = httpGet(`${inventoryUrl}/stock/${item}`, { timeout: 10_000 }, (answer) => {
    let body = '';
    answer.setEncoding('utf8');
    answer.on('data', (c) => {
      body += c;
    });
    answer.on('end', () => {
      if (answer.statusCode !== 200) {
        log('ERROR', `inventory answered ${answer.statusCode} for ${item}`);
        return send(res, 502, { error: `inventory answered ${answer.statusCode}` });
      }
      let s;
      try {
        s = JSON.parse(body);
      } catch {
        return send(res, 502, { error: 'inventory answered something that is not JSON' });
      }
      send(res, 200, { item, available: s.available, replica: s.replica });
    });
  });
  call.on('timeout', () => call.destroy(new Error('timed out')));
  call.on('error', (err) => {
    log('ERROR', `inventory unreachable: ${err.message}`);
    if (!res.headersSent) send(res, 502, { error: 'inventory unreachable' });
  });
}

process.on('SIGHUP', loadConfig);
process.on('SIGTERM', () => {
  log('INFO', 'SIGTERM: closing');
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});

loadConfig();
log('INFO', `warming up for ${startupDelay}ms`);
setTimeout(() => {
  warm = true;
  serveIfUsable();
}, startupDelay);
