import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import pino from 'pino';
import { FakeClock } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import { waitFor } from '../../lib/wait-for.js';
import { CertStore, type CertStoreDeps, type TlsListenerSettings } from './index.js';
import { makeCa, makeClientLeaf, makeLeaf, type TestCa, type TestPair } from './test-certs.js';

let root: string;
let ca: TestCa;
let otherCa: TestCa;
let leafDefault: TestPair;
let leafA: TestPair;
let leafB: TestPair;
let leafWild: TestPair;
let leafRotated: TestPair;
let client: TestPair;
let strangerClient: TestPair;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'pillion-tls-'));
  [ca, otherCa] = await Promise.all([makeCa(), makeCa({ commonName: 'Other CA' })]);
  [leafDefault, leafA, leafB, leafWild, leafRotated, client, strangerClient] = await Promise.all([
    makeLeaf(ca, { names: ['default.example.com', '127.0.0.1'] }),
    makeLeaf(ca, { names: ['a.example.com'] }),
    makeLeaf(ca, { names: ['b.example.com', 'b2.example.com'] }),
    makeLeaf(ca, { names: ['*.wild.example.com'], commonName: 'wildcard' }),
    makeLeaf(ca, { names: ['default.example.com'], commonName: 'rotated' }),
    makeClientLeaf(ca, { commonName: 'orders-client' }),
    makeClientLeaf(otherCa, { commonName: 'stranger' }),
  ]);
});

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await rm(root, { recursive: true, force: true });
});

let dirSeq = 0;
async function freshDir(): Promise<string> {
  const dir = join(root, `t${dirSeq++}`);
  await mkdir(dir);
  return dir;
}

async function writePair(dir: string, name: string, pair: TestPair): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, pair.cert);
  await writeFile(key, pair.key);
  return { cert, key };
}

/** Replaces a file the way editors and `mv` do: write beside it, then rename over it. */
async function replaceByRename(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${dirSeq++}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

function fingerprint(pair: TestPair): string {
  return new X509Certificate(pair.cert).fingerprint256;
}

interface LogLine {
  level: number;
  msg: string;
  code?: string;
  file?: string;
}

function captureLogger(): { logger: pino.Logger; lines: LogLine[]; raw: string[] } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(s: string) {
        raw.push(s);
        lines.push(JSON.parse(s) as LogLine);
      },
    },
  );
  return { logger, lines, raw };
}

const WARN = 40;

interface Harness {
  store: CertStore;
  port: number;
  server: tls.Server;
  /** Server-side sockets, in order of completed handshakes. */
  accepted: tls.TLSSocket[];
  connect(opts?: tls.ConnectionOptions): Promise<tls.TLSSocket>;
}

async function start(
  settings: TlsListenerSettings,
  deps: Partial<CertStoreDeps> = {},
  opts: { watch?: boolean } = {},
): Promise<Harness> {
  const store = await CertStore.load(settings, { logger: pino({ level: 'silent' }), ...deps });
  const accepted: tls.TLSSocket[] = [];
  const server = tls.createServer(store.serverOptions(), (socket) => {
    accepted.push(socket);
    socket.on('error', () => {});
    socket.on('data', (d) => socket.write(d));
  });
  server.on('tlsClientError', () => {}); // refused handshakes are what some tests expect
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  if (opts.watch) store.watch(server);
  const port = (server.address() as AddressInfo).port;
  const clients: tls.TLSSocket[] = [];
  cleanups.push(() => {
    store.close();
    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return {
    store,
    port,
    server,
    accepted,
    connect(connectOpts = {}) {
      return new Promise((resolve, reject) => {
        const sock = tls.connect({
          port,
          host: '127.0.0.1',
          ca: [ca.cert],
          // names are asserted by each test; the chain is still verified against the CA
          checkServerIdentity: () => undefined,
          ...connectOpts,
        });
        clients.push(sock);
        sock.once('secureConnect', () => resolve(sock));
        sock.once('error', reject);
      });
    },
  };
}

/** Writes through the connection and resolves with the echo; rejects if the server refuses or closes. */
function roundTrip(sock: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      cleanup();
      resolve(d.toString());
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('closed before the echo'));
    };
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('close', onClose);
    };
    sock.on('data', onData);
    sock.on('error', onError);
    sock.on('close', onClose);
    sock.write(text);
  });
}

async function servedFingerprint(h: Harness, servername?: string): Promise<string> {
  const sock = await h.connect(servername === undefined ? {} : { servername });
  try {
    return sock.getPeerCertificate().fingerprint256;
  } finally {
    sock.destroy();
  }
}

describe('SNI selection', () => {
  let h: Harness;
  before(async () => {
    const dir = await freshDir();
    const d = await writePair(dir, 'default', leafDefault);
    const a = await writePair(dir, 'a', leafA);
    const b = await writePair(dir, 'b', leafB);
    const w = await writePair(dir, 'wild', leafWild);
    h = await start({
      certificates: [
        { ...d, serverNames: [] },
        { ...a, serverNames: [] },
        { ...b, serverNames: ['b.example.com', 'alias.test'] },
        { ...w, serverNames: [] },
      ],
      minVersion: 'TLSv1.2',
      alpn: ['http/1.1'],
    });
  });

  test('picks the certificate whose names match, exactly and case-insensitively', async () => {
    const sock = await h.connect({ servername: 'a.example.com' });
    const peer = sock.getPeerCertificate();
    assert.equal(peer.subject.CN, 'a.example.com');
    assert.equal(peer.subjectaltname, 'DNS:a.example.com');
    assert.equal(sock.authorized, true);
    assert.equal(await roundTrip(sock, 'hi'), 'hi');
    sock.destroy();
    assert.equal(await servedFingerprint(h, 'A.Example.COM'), fingerprint(leafA));
  });

  test('explicit serverNames replace the names in the certificate', async () => {
    assert.equal(await servedFingerprint(h, 'alias.test'), fingerprint(leafB));
    assert.equal(await servedFingerprint(h, 'b.example.com'), fingerprint(leafB));
    // b2 is in the certificate but not in serverNames
    assert.equal(await servedFingerprint(h, 'b2.example.com'), fingerprint(leafDefault));
  });

  test('clients without SNI or with an unknown name get the first certificate', async () => {
    assert.equal(await servedFingerprint(h), fingerprint(leafDefault)); // an IP host sends no SNI
    assert.equal(await servedFingerprint(h, 'unknown.example.org'), fingerprint(leafDefault));
  });

  test('a wildcard matches exactly one label', async () => {
    assert.equal(await servedFingerprint(h, 'x.wild.example.com'), fingerprint(leafWild));
    assert.equal(await servedFingerprint(h, 'a.b.wild.example.com'), fingerprint(leafDefault));
    assert.equal(await servedFingerprint(h, 'wild.example.com'), fingerprint(leafDefault));
  });

  test('describe() lists names, subject and expiry without key material', () => {
    const d = h.store.describe();
    assert.equal(d.length, 4);
    assert.deepEqual(d[0]!.serverNames, ['default.example.com']); // the IP SAN is not an SNI name
    assert.equal(d[0]!.subject, 'CN=default.example.com');
    assert.match(d[0]!.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(d[0]!.notAfter, new Date(new X509Certificate(leafDefault.cert).validTo).toISOString());
    assert.deepEqual(d[2]!.serverNames, ['b.example.com', 'alias.test']);
    assert.deepEqual(d[3]!.serverNames, ['*.wild.example.com']);
    assert.doesNotMatch(JSON.stringify(d), /PRIVATE KEY/);
  });
});

describe('protocol versions and ALPN', () => {
  test('TLS 1.2 and 1.3 both negotiate when minVersion is TLSv1.2', async () => {
    const dir = await freshDir();
    const d = await writePair(dir, 'default', leafDefault);
    const a = await writePair(dir, 'a', leafA);
    const h = await start({
      certificates: [
        { ...d, serverNames: [] },
        { ...a, serverNames: [] },
      ],
      minVersion: 'TLSv1.2',
      alpn: [],
    });
    const v13 = await h.connect({ servername: 'a.example.com' });
    assert.equal(v13.getProtocol(), 'TLSv1.3');
    const v12 = await h.connect({ servername: 'a.example.com', maxVersion: 'TLSv1.2' });
    assert.equal(v12.getProtocol(), 'TLSv1.2');
    assert.equal(v12.getPeerCertificate().fingerprint256, fingerprint(leafA));
    assert.equal(await roundTrip(v12, 'twelve'), 'twelve');
    assert.equal(v12.alpnProtocol, false); // TCP mode offers no ALPN
  });

  test('minVersion TLSv1.3 refuses a client that stops at TLS 1.2, with and without SNI', async () => {
    const dir = await freshDir();
    const d = await writePair(dir, 'default', leafDefault);
    const a = await writePair(dir, 'a', leafA);
    const h = await start({
      certificates: [
        { ...d, serverNames: [] },
        { ...a, serverNames: [] },
      ],
      minVersion: 'TLSv1.3',
      alpn: [],
    });
    await assert.rejects(h.connect({ maxVersion: 'TLSv1.2' }));
    await assert.rejects(h.connect({ servername: 'a.example.com', maxVersion: 'TLSv1.2' }));
    const ok = await h.connect({ servername: 'a.example.com' });
    assert.equal(ok.getProtocol(), 'TLSv1.3');
  });

  test('ALPN negotiates h2 or http/1.1 as the client offers', async () => {
    const dir = await freshDir();
    const d = await writePair(dir, 'default', leafDefault);
    const h = await start({
      certificates: [{ ...d, serverNames: [] }],
      minVersion: 'TLSv1.2',
      alpn: ['h2', 'http/1.1'],
    });
    const both = await h.connect({ ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.alpnProtocol, 'h2');
    const h1 = await h.connect({ ALPNProtocols: ['http/1.1'] });
    assert.equal(h1.alpnProtocol, 'http/1.1');
    const sni = await h.connect({ servername: 'default.example.com', ALPNProtocols: ['http/1.1', 'h2'] });
    assert.equal(sni.alpnProtocol, 'h2'); // the server's preference wins
  });
});

describe('certificate rotation', () => {
  test('a pair replaced by rename reaches new handshakes; an open connection keeps working', async () => {
    const dir = await freshDir();
    const files = await writePair(dir, 'server', leafDefault);
    const reloads: boolean[] = [];
    // A poll too slow to matter here: the directory watch has to notice the renames.
    const h = await start(
      { certificates: [{ ...files, serverNames: [] }], minVersion: 'TLSv1.2', alpn: [] },
      { onReload: (ok) => reloads.push(ok), debounceMs: 20, pollMs: 60_000 },
      { watch: true },
    );
    const before = await h.connect({ servername: 'default.example.com' });
    assert.equal(before.getPeerCertificate().fingerprint256, fingerprint(leafDefault));

    await replaceByRename(files.cert, leafRotated.cert);
    await replaceByRename(files.key, leafRotated.key);

    await waitFor(
      async () => (await servedFingerprint(h, 'default.example.com')) === fingerprint(leafRotated),
      {
        what: 'the rotated certificate on SNI handshakes',
        timeoutMs: 3000,
      },
    );
    // No SNI goes through the server's own context, which watch() swaps with setSecureContext.
    assert.equal(await servedFingerprint(h), fingerprint(leafRotated));
    assert.equal(reloads.at(-1), true);
    assert.equal(await roundTrip(before, 'still here'), 'still here');
    assert.equal(before.getPeerCertificate().fingerprint256, fingerprint(leafDefault));
    assert.equal(h.store.describe()[0]!.subject, 'CN=rotated');
  });

  test('a Kubernetes-style ..data symlink swap is picked up', async () => {
    const dir = await freshDir();
    const v1 = join(dir, '..2024_01_01_00_00_00.1');
    const v2 = join(dir, '..2024_01_01_00_00_01.2');
    await mkdir(v1);
    await writeFile(join(v1, 'tls.crt'), leafDefault.cert);
    await writeFile(join(v1, 'tls.key'), leafDefault.key);
    await symlink('..2024_01_01_00_00_00.1', join(dir, '..data'));
    await symlink('..data/tls.crt', join(dir, 'tls.crt'));
    await symlink('..data/tls.key', join(dir, 'tls.key'));
    const h = await start(
      {
        certificates: [{ cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), serverNames: [] }],
        minVersion: 'TLSv1.2',
        alpn: [],
      },
      { debounceMs: 20, pollMs: 60_000 },
      { watch: true },
    );
    const open = await h.connect();
    assert.equal(open.getPeerCertificate().fingerprint256, fingerprint(leafDefault));

    // What the kubelet does: a new timestamped directory, a temporary link, one atomic rename.
    await mkdir(v2);
    await writeFile(join(v2, 'tls.crt'), leafRotated.cert);
    await writeFile(join(v2, 'tls.key'), leafRotated.key);
    await symlink('..2024_01_01_00_00_01.2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(v1, { recursive: true });

    await waitFor(async () => (await servedFingerprint(h)) === fingerprint(leafRotated), {
      what: 'the certificate behind the swapped ..data link',
      timeoutMs: 3000,
    });
    assert.equal(await roundTrip(open, 'ping'), 'ping');
  });

  test('the poll catches a change, and retries while cert and key do not match yet', async () => {
    const dir = await freshDir();
    const files = await writePair(dir, 'server', leafDefault);
    const clock = new FakeClock();
    const reloads: boolean[] = [];
    const log = captureLogger();
    const h = await start(
      { certificates: [{ ...files, serverNames: [] }], minVersion: 'TLSv1.2', alpn: [] },
      { clock, logger: log.logger, onReload: (ok) => reloads.push(ok), pollMs: 5000 },
      { watch: true },
    );
    // Only the certificate has landed so far.
    await writeFile(files.cert, leafRotated.cert);
    await waitFor(
      async () => {
        await clock.advance(5000);
        return reloads.includes(false);
      },
      { what: 'a failed reload of the half-written pair', timeoutMs: 3000 },
    );
    assert.equal(await servedFingerprint(h), fingerprint(leafDefault));
    // Further polls over the same bad files neither rebuild nor warn again.
    await clock.advance(5000);
    await clock.advance(5000);
    assert.equal(log.lines.filter((l) => l.level === WARN).length, 1);

    await writeFile(files.key, leafRotated.key);
    await waitFor(
      async () => {
        await clock.advance(5000);
        return reloads.at(-1) === true;
      },
      { what: 'the completed pair to be swapped in', timeoutMs: 3000 },
    );
    assert.equal(await servedFingerprint(h), fingerprint(leafRotated));
  });

  test('a key that does not match keeps the old certificate; reload() resolves false and logs the path once', async () => {
    const dir = await freshDir();
    const files = await writePair(dir, 'server', leafDefault);
    const log = captureLogger();
    const reloads: boolean[] = [];
    const h = await start(
      { certificates: [{ ...files, serverNames: [] }], minVersion: 'TLSv1.2', alpn: [] },
      { logger: log.logger, onReload: (ok) => reloads.push(ok) },
    );
    h.store.watch(h.server);
    await replaceByRename(files.key, leafA.key);
    assert.equal(await h.store.reload(), false);
    assert.equal(await h.store.reload(), false);
    assert.equal(await servedFingerprint(h), fingerprint(leafDefault));
    assert.equal(await servedFingerprint(h, 'default.example.com'), fingerprint(leafDefault));
    assert.ok(reloads.length >= 2 && reloads.every((ok) => !ok));

    const warns = log.lines.filter((l) => l.level === WARN);
    assert.equal(warns.length, 1, 'one warning per distinct failure');
    assert.equal(warns[0]!.code, 'PILLION_ERR_TLS_FILE');
    assert.equal(warns[0]!.file, files.key);
    assert.match(warns[0]!.msg, new RegExp(`key ${files.key} does not match certificate ${files.cert}`));
    assert.ok(!log.raw.some((s) => s.includes('PRIVATE KEY') || s.includes('BEGIN')), 'no PEM in the logs');

    // A different problem is news again.
    await replaceByRename(files.cert, 'not a certificate');
    assert.equal(await h.store.reload(), false);
    assert.equal(log.lines.filter((l) => l.level === WARN).length, 2);
    assert.match(log.lines.at(-1)!.msg, new RegExp(`tls certificate ${files.cert}: not a PEM certificate`));

    // Fixed files go in on the next reload.
    await replaceByRename(files.cert, leafA.cert);
    assert.equal(await h.store.reload(), true);
    assert.equal(await servedFingerprint(h), fingerprint(leafA));
    assert.equal(reloads.at(-1), true);
  });
});

describe('load() errors name the file', () => {
  async function loadError(settings: TlsListenerSettings): Promise<PillionError> {
    try {
      await CertStore.load(settings, { logger: pino({ level: 'silent' }) });
    } catch (err) {
      assert.ok(err instanceof PillionError);
      assert.equal(err.code, 'PILLION_ERR_TLS_FILE');
      assert.doesNotMatch(err.message, /BEGIN|PRIVATE KEY/);
      return err;
    }
    assert.fail('load() should have thrown');
  }
  const one = (cert: string, key: string): TlsListenerSettings => ({
    certificates: [{ cert, key, serverNames: [] }],
    minVersion: 'TLSv1.2',
    alpn: [],
  });

  test('an unreadable file', async () => {
    const dir = await freshDir();
    const files = await writePair(dir, 'server', leafDefault);
    const missing = join(dir, 'missing.crt');
    const err = await loadError(one(missing, files.key));
    assert.equal(err.message, `tls certificate ${missing}: cannot read (ENOENT)`);
    const isDir = await loadError(one(files.cert, dir));
    assert.equal(isDir.message, `tls key ${dir}: not a regular file`);
  });

  test('a certificate or key that is not PEM', async () => {
    const dir = await freshDir();
    const files = await writePair(dir, 'server', leafDefault);
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'hello');
    assert.equal(
      (await loadError(one(junk, files.key))).message,
      `tls certificate ${junk}: not a PEM certificate`,
    );
    assert.equal((await loadError(one(files.cert, junk))).message, `tls key ${junk}: not a PEM private key`);
    // a key where the certificate belongs
    assert.equal(
      (await loadError(one(files.key, files.key))).message,
      `tls certificate ${files.key}: not a PEM certificate`,
    );
  });

  test('a key that does not match its certificate', async () => {
    const dir = await freshDir();
    const good = await writePair(dir, 'good', leafDefault);
    const other = await writePair(dir, 'other', leafA);
    const err = await loadError(one(good.cert, other.key));
    assert.equal(err.message, `key ${other.key} does not match certificate ${good.cert}`);
  });

  test('a client CA bundle that is not PEM', async () => {
    const dir = await freshDir();
    const files = await writePair(dir, 'server', leafDefault);
    const err = await loadError({
      ...one(files.cert, files.key),
      clientCertificate: { ca: files.key, required: true },
    });
    assert.equal(err.message, `tls client CA ${files.key}: not a PEM certificate`);
  });
});

describe('client certificates', () => {
  async function mtls(required: boolean): Promise<Harness> {
    const dir = await freshDir();
    const d = await writePair(dir, 'default', leafDefault);
    const a = await writePair(dir, 'a', leafA);
    const caFile = join(dir, 'clients-ca.pem');
    await writeFile(caFile, ca.cert);
    return start({
      certificates: [
        { ...d, serverNames: [] },
        { ...a, serverNames: [] },
      ],
      minVersion: 'TLSv1.2',
      alpn: [],
      clientCertificate: { ca: caFile, required },
    });
  }

  test('a client with a certificate from the CA is accepted and seen, with and without SNI', async () => {
    const h = await mtls(true);
    for (const servername of [undefined, 'a.example.com']) {
      const sock = await h.connect({
        cert: client.cert,
        key: client.key,
        ...(servername ? { servername } : {}),
      });
      assert.equal(await roundTrip(sock, 'mtls'), 'mtls');
      const seen = h.accepted.at(-1)!;
      assert.equal(seen.authorized, true);
      assert.equal(seen.getPeerCertificate().subject.CN, 'orders-client');
    }
  });

  test('required: a client without a certificate, or with one from another CA, is refused', async () => {
    const h = await mtls(true);
    const attempt = async (opts: tls.ConnectionOptions) => {
      // TLS 1.3 clients finish their side before the server has checked them; the refusal
      // arrives as an alert on the first read.
      const sock = await h.connect(opts);
      return roundTrip(sock, 'let me in');
    };
    await assert.rejects(attempt({}));
    await assert.rejects(attempt({ servername: 'a.example.com' }));
    await assert.rejects(attempt({ cert: strangerClient.cert, key: strangerClient.key }));
    await assert.rejects(attempt({ maxVersion: 'TLSv1.2', servername: 'a.example.com' }));
    assert.equal(h.accepted.length, 0);
  });

  test('optional: a client without a certificate is accepted, unauthorized', async () => {
    const h = await mtls(false);
    const sock = await h.connect({ servername: 'a.example.com' });
    assert.equal(await roundTrip(sock, 'anonymous'), 'anonymous');
    const seen = h.accepted.at(-1)!;
    assert.equal(seen.authorized, false);
    assert.deepEqual(seen.getPeerCertificate(), {});
    const withCert = await h.connect({ servername: 'a.example.com', cert: client.cert, key: client.key });
    assert.equal(await roundTrip(withCert, 'named'), 'named');
    assert.equal(h.accepted.at(-1)!.authorized, true);
  });
});
