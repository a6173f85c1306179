// The listener's HTTP/2 side loaded on first use: connections handed over while the code loads
// wait, paused, and lose nothing; drain, close, resets and a failed load are each handled.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { waitFor } from '../../lib/wait-for.js';
import type { PeerIdentity } from '../peer.js';
import { DeferredH2Handler } from './deferred-handler.js';
import type { H2Handler } from './types.js';

const logger = pino({ level: 'silent' });
let server: net.Server;
const accepted: net.Socket[] = [];

before(async () => {
  server = net.createServer((s) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});
after(() => server.close());

/** A client connection and its server side. */
async function pair(): Promise<{ client: net.Socket; socket: net.Socket }> {
  const n = accepted.length;
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const socket = await waitFor(() => accepted[n], { what: 'the server side of the connection' });
  return { client, socket };
}

/** A handler standing in for the real one: records what it is asked, reads what it is given. */
class Recorder implements H2Handler {
  readonly calls: string[] = [];
  readonly read = new Map<net.Socket, Buffer[]>();
  accept(socket: net.Socket, head?: Buffer, peer?: PeerIdentity): void {
    this.calls.push(`accept ${peer?.principal ?? ''}`.trim());
    const got = [head ?? Buffer.alloc(0)];
    this.read.set(socket, got);
    socket.on('data', (b: Buffer) => got.push(b));
    socket.resume();
  }
  drain(): void {
    this.calls.push('drain');
  }
  close(): void {
    this.calls.push('close');
  }
  get sessions(): number {
    return this.read.size;
  }
}

/** make() for the handler, resolved (or failed) when the test says. */
function deferred() {
  let resolve!: (h: H2Handler) => void;
  let reject!: (e: Error) => void;
  const p = new Promise<H2Handler>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let made = 0;
  return {
    make: () => {
      made++;
      return p;
    },
    resolve,
    reject,
    made: () => made,
  };
}

test('a connection handed over while the code loads waits paused and loses none of its bytes', async () => {
  const d = deferred();
  const h = new DeferredH2Handler(d.make, logger);
  const { client, socket } = await pair();
  // A socket read before (by an HTTP/1.1 side that saw the preface) flows without a listener.
  socket.on('data', () => {});
  socket.removeAllListeners('data');
  h.accept(socket, Buffer.from('PRI * HTTP/2.0\r\n'), {
    principal: 'spiffe://t/a',
    xfcc: '',
  } as unknown as PeerIdentity);
  const second = await pair();
  h.accept(second.socket);
  assert.equal(h.sessions, 2, 'waiting connections count as sessions');
  assert.equal(d.made(), 1, 'the code is loaded once');
  client.write('\r\nSM\r\n\r\n');
  client.write('more');
  // The bytes reach the socket's buffer, not a listener: nothing reads it yet.
  await waitFor(() => socket.readableLength === '\r\nSM\r\n\r\nmore'.length || undefined, {
    what: "the client's bytes kept in the paused socket",
  });
  const real = new Recorder();
  d.resolve(real);
  await waitFor(
    () =>
      Buffer.concat(real.read.get(socket) ?? []).toString() === 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nmore' ||
      undefined,
    {
      what: 'every byte at the handler',
    },
  );
  assert.deepEqual(real.calls, ['accept spiffe://t/a', 'accept']);
  // Once loaded, a connection goes straight to the handler.
  const third = await pair();
  h.accept(third.socket);
  assert.equal(real.calls.length, 3);
  assert.equal(h.sessions, 3);
  for (const c of [client, second.client, third.client]) c.destroy();
});

test('a drain asked for while the code loads reaches the connections accepted after it', async () => {
  const d = deferred();
  const h = new DeferredH2Handler(d.make, logger);
  const { client, socket } = await pair();
  h.accept(socket);
  h.drain();
  const real = new Recorder();
  d.resolve(real);
  await waitFor(() => real.calls.includes('drain') || undefined, { what: 'the drain' });
  assert.deepEqual(real.calls.slice(0, 2), ['accept', 'drain']);
  h.drain();
  assert.equal(real.calls.at(-1), 'drain');
  client.destroy();
});

test('close while the code loads closes the waiting connections, and the handler once loaded', async () => {
  const d = deferred();
  const h = new DeferredH2Handler(d.make, logger);
  const { client, socket } = await pair();
  h.accept(socket);
  h.close();
  assert.ok(socket.destroyed);
  assert.equal(h.sessions, 0);
  await once(client, 'close');
  const real = new Recorder();
  d.resolve(real);
  await waitFor(() => real.calls.includes('close') || undefined, { what: 'the loaded handler closed' });
  assert.deepEqual(real.calls, ['close']);
  // After close, a connection is refused at once.
  const late = await pair();
  h.accept(late.socket);
  assert.ok(late.socket.destroyed);
  late.client.destroy();
});

test('a waiting connection its client resets is closed without an unhandled error, and never handed over', async () => {
  const d = deferred();
  const h = new DeferredH2Handler(d.make, logger);
  const { client, socket } = await pair();
  h.accept(socket);
  client.resetAndDestroy();
  // (events.once would take the 'error' as its own failure: the handler's listener is the one asserted.)
  await new Promise((resolve) => socket.on('close', resolve));
  assert.ok(socket.destroyed);
  const real = new Recorder();
  d.resolve(real);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(real.calls, []);
  assert.equal(h.sessions, 0);
});

test('a load that fails closes the waiting connections, says so in the log, and is tried again by the next', async () => {
  const d = deferred();
  const lines: string[] = [];
  const log = pino({ level: 'error' }, { write: (l: string) => lines.push(l) });
  const h = new DeferredH2Handler(d.make, log);
  const { client, socket } = await pair();
  h.accept(socket);
  d.reject(new Error('no such module'));
  await once(client, 'close');
  assert.ok(socket.destroyed);
  assert.equal(h.sessions, 0);
  assert.match(
    lines.join(''),
    /HTTP\/2's code could not be loaded.*no such module|no such module.*HTTP\/2's code could not be loaded/,
  );
  // The next connection tries again, and is refused as loudly.
  const next = await pair();
  h.accept(next.socket);
  await once(next.client, 'close');
  assert.equal(d.made(), 2);
  assert.equal(lines.filter((l) => l.includes("HTTP/2's code could not be loaded")).length, 2);
});
