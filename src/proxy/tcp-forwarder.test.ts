// TCP mode over real sockets: plain forwarding, TLS termination in front of a plain server,
// half-close, connect failures, idle timeout and drain.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { waitFor } from '../lib/wait-for.js';
import { freePort, listen, metricValue, startInbound } from './test-support.js';
import { makeCa, makeLeaf, type TestCa } from './tls/test-certs.js';

/**
 * An echo server that also answers at the end: what it received, upper-cased, is written back
 * once the client has half-closed, then it ends its side too.
 */
async function startEcho(): Promise<{ port: number; accepted: () => number; close: () => void }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let total = 0;
    s.on('data', (b: Buffer) => {
      total += b.length;
      s.write(b);
    });
    s.on('end', () => s.end(`\nEND ${total}\n`));
  });
  const port = await listen(server);
  return {
    port,
    accepted: () => accepted,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Sends data, half-closes, and collects everything until the server ends. */
async function roundTrip(socket: net.Socket, data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (b: Buffer) => parts.push(b));
  const done = new Promise<void>((resolve, reject) => {
    socket.on('end', () => resolve());
    socket.on('error', reject);
  });
  socket.end(data);
  await done;
  return Buffer.concat(parts);
}

function connect(port: number, allowHalfOpen = true): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen }, () => resolve(s));
    s.once('error', reject);
  });
}

let echo: Awaited<ReturnType<typeof startEcho>>;
let dir: string;
let ca: TestCa;

before(async () => {
  echo = await startEcho();
  dir = mkdtempSync(join(tmpdir(), 'pillion-tcp-'));
  ca = await makeCa();
});
after(() => {
  echo.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('plain TCP', () => {
  test('bytes both ways, 8 MB, and half-close: the client still gets the rest', async () => {
    const p = await startInbound(
      {
        listeners: [{ name: 'raw', address: '127.0.0.1:0', mode: 'tcp', upstream: 'legacy' }],
        upstreams: { legacy: { endpoints: [`127.0.0.1:${echo.port}`] } },
      },
      {},
    );
    try {
      const data = Buffer.alloc(8 * 1024 * 1024, 'q');
      const got = await roundTrip(await connect(p.port()), data);
      assert.equal(got.length, data.length + `\nEND ${data.length}\n`.length);
      assert.ok(got.subarray(0, data.length).equals(data));
      assert.equal(got.subarray(data.length).toString(), `\nEND ${data.length}\n`);
      assert.ok(
        (await metricValue(p.metrics, 'pillion_proxy_bytes_total', { listener: 'raw', direction: 'in' })) >=
          data.length,
      );
    } finally {
      await p.stop();
    }
  });

  test('defaults to the app as upstream', async () => {
    const p = await startInbound(
      { listeners: [{ address: '127.0.0.1:0', mode: 'tcp' }] },
      { app: echo.port },
    );
    try {
      const got = await roundTrip(await connect(p.port()), Buffer.from('hi'));
      assert.equal(got.toString(), 'hi\nEND 2\n');
    } finally {
      await p.stop();
    }
  });

  test('an upstream that refuses: the client connection is closed, and it is counted', async () => {
    const port = await freePort();
    const p = await startInbound({ listeners: [{ address: '127.0.0.1:0', mode: 'tcp' }] }, { app: port });
    try {
      const s = await connect(p.port());
      const closed = new Promise<void>((resolve) => s.on('end', () => resolve()));
      s.on('error', () => {});
      s.on('data', () => assert.fail('no bytes expected'));
      await closed;
      assert.equal(
        await metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', {
          upstream: 'app',
          kind: 'connect_refused',
        }),
        1,
      );
    } finally {
      await p.stop();
    }
  });

  test('idle: a pair with no traffic is closed', async () => {
    const p = await startInbound(
      { listeners: [{ address: '127.0.0.1:0', mode: 'tcp' }], timeouts: { idle: '150ms' } },
      { app: echo.port },
    );
    try {
      const s = await connect(p.port());
      s.on('error', () => {});
      const t0 = Date.now();
      await new Promise<void>((resolve) => s.on('end', () => resolve()));
      assert.ok(Date.now() - t0 >= 100);
    } finally {
      await p.stop();
    }
  });

  test('drain ends open pairs and refuses new connections', async () => {
    const p = await startInbound(
      { listeners: [{ address: '127.0.0.1:0', mode: 'tcp' }] },
      { app: echo.port },
    );
    try {
      const port = p.port();
      // An ordinary client: it closes when the proxy ends its side.
      const s = await connect(port, false);
      s.on('error', () => {});
      const parts: Buffer[] = [];
      s.on('data', (b: Buffer) => parts.push(b));
      s.write('before drain');
      await waitFor(() => Buffer.concat(parts).toString() === 'before drain', { what: 'the echo' });
      const ended = new Promise<void>((resolve) => s.on('end', () => resolve()));
      // A deadline no test run reaches: drain must end because the client's connection ended.
      await p.module.drain(Date.now() + 600_000);
      await ended;
      await assert.rejects(connect(port));
    } finally {
      await p.stop();
    }
  });
});

describe('TLS-terminating TCP', () => {
  test('TLS in front of a plain server, with half-close', async () => {
    const leaf = await makeLeaf(ca, { names: ['legacy.test'] });
    const cert = join(dir, 'legacy.crt');
    const key = join(dir, 'legacy.key');
    writeFileSync(cert, leaf.cert);
    writeFileSync(key, leaf.key);
    const p = await startInbound(
      { listeners: [{ address: '127.0.0.1:0', mode: 'tcp', tls: { certificates: [{ cert, key }] } }] },
      { app: echo.port },
    );
    try {
      const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const t = tls.connect(
          {
            host: '127.0.0.1',
            port: p.port(),
            servername: 'legacy.test',
            ca: ca.cert,
            allowHalfOpen: true,
          } as tls.ConnectionOptions,
          () => resolve(t),
        );
        t.once('error', reject);
      });
      assert.equal(s.alpnProtocol, false);
      const data = Buffer.alloc(1024 * 1024, 'z');
      const got = await roundTrip(s, data);
      assert.equal(got.subarray(data.length).toString(), `\nEND ${data.length}\n`);
      assert.ok(got.subarray(0, data.length).equals(data));
    } finally {
      await p.stop();
    }
  });
});
