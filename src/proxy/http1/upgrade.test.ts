// Upgrade requests over real sockets: only the route's protocols are tunnelled, h2c never, and a
// request left without any goes on as plain HTTP/1.1.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { InboundSection } from '../inbound.js';
import { get, listen, metricValue, RawClient, type StartedProxy, startInbound } from '../test-support.js';

/**
 * An app that switches to any protocol it is offered, as Go's h2c.NewHandler does for h2c: it
 * answers 101 and then echoes, as "tunnel:<bytes>", whatever comes through the tunnel. Without an
 * Upgrade it answers 200 with the head it received.
 */
class SwitchingApp {
  readonly server: net.Server;
  port = 0;
  heads: string[] = [];
  /** Force the 101's Upgrade value (an app that switches to what it likes). */
  switchTo: string | undefined;

  constructor() {
    this.server = net.createServer((sock) => {
      let buf = '';
      let tunnel = false;
      sock.on('error', () => {});
      sock.on('data', (d: Buffer) => {
        if (tunnel) {
          sock.write(`tunnel:${d.toString('latin1')}`);
          return;
        }
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          this.heads.push(head);
          const upgrade = /^upgrade: *(.+)$/im.exec(head)?.[1];
          if (upgrade !== undefined) {
            tunnel = true;
            const to = this.switchTo ?? upgrade.split(',')[0]!.trim();
            sock.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${to}\r\n\r\n`);
            return;
          }
          const body = head.split('\r\n')[0]!;
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        }
      });
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// What curl --http2 sends on a cleartext URL.
const CURL_H2C = {
  Connection: 'Upgrade, HTTP2-Settings',
  Upgrade: 'h2c',
  'HTTP2-Settings': 'AAMAAABkAAQAoAAAAAIAAAAA',
};

let app: SwitchingApp;
let proxy: StartedProxy<InboundSection>;

before(async () => {
  app = await new SwitchingApp().start();
  proxy = await startInbound(
    {
      listeners: [{ address: '127.0.0.1:0' }],
      routes: [
        { match: { prefix: '/admin' }, directResponse: { status: 403, body: 'no\n' } },
        { match: { prefix: '/custom' }, upgradeProtocols: ['websocket', 'x-custom'] },
        {},
      ],
    },
    { app: app.port },
  );
});

after(async () => {
  await proxy.stop();
  await app.close();
});

function refused(reason: string): Promise<number> {
  return metricValue(proxy.metrics, 'pillion_proxy_refusals_total', { reason });
}

describe('regression: Upgrade: h2c was tunnelled to the app, past the routes', () => {
  test('an h2c upgrade is proxied as plain HTTP/1.1 without Upgrade or HTTP2-Settings; /admin stays refused', async () => {
    const before = await refused('upgrade_h2c');
    const c = await RawClient.connect(proxy.port());
    c.write(get('/', CURL_H2C));
    const res = await c.readResponse();
    // curl --http2 gets its answer over HTTP/1.1, as through nginx.
    assert.equal(res.status, 200);
    const head = app.heads.at(-1)!;
    assert.doesNotMatch(head, /^upgrade:/im);
    assert.doesNotMatch(head, /^http2-settings:/im);
    assert.doesNotMatch(head, /^connection:/im);
    // Had the proxy tunnelled, this request would have gone to the app inside the tunnel.
    c.write(get('/admin'));
    assert.equal((await c.readResponse()).status, 403);
    c.destroy();
    assert.equal(await refused('upgrade_h2c'), before + 1);
  });

  test('HTTP2-Settings is dropped even when Connection does not name it', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/', { 'HTTP2-Settings': 'AAMAAABkAAQAoAAAAAIAAAAA' }));
    assert.equal((await c.readResponse()).status, 200);
    assert.doesNotMatch(app.heads.at(-1)!, /^http2-settings:/im);
    c.destroy();
  });

  test('Upgrade: h2c, websocket offers only websocket', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/ws', { Connection: 'Upgrade', Upgrade: 'h2c, websocket', 'Sec-WebSocket-Version': '13' }));
    const res = await c.readResponse();
    assert.equal(res.status, 101);
    assert.match(app.heads.at(-1)!, /^upgrade: websocket$/im);
    c.destroy();
  });

  test('a protocol the route does not allow is removed; one it allows is offered', async () => {
    const before = await refused('upgrade_not_allowed');
    const c = await RawClient.connect(proxy.port());
    c.write(get('/plain', { Connection: 'Upgrade', Upgrade: 'x-custom' }));
    assert.equal((await c.readResponse()).status, 200);
    assert.doesNotMatch(app.heads.at(-1)!, /^upgrade:/im);
    c.destroy();
    assert.equal(await refused('upgrade_not_allowed'), before + 1);

    const d = await RawClient.connect(proxy.port());
    d.write(get('/custom', { Connection: 'Upgrade', Upgrade: 'X-Custom/2' }));
    assert.equal((await d.readResponse()).status, 101);
    assert.match(app.heads.at(-1)!, /^upgrade: X-Custom\/2$/im);
    d.destroy();
  });

  test('an app that switches to a protocol the request did not offer gets 502', async () => {
    app.switchTo = 'h2c';
    try {
      const c = await RawClient.connect(proxy.port());
      c.write(get('/ws', { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' }));
      assert.equal((await c.readResponse()).status, 502);
      c.destroy();
    } finally {
      app.switchTo = undefined;
    }
  });
});
