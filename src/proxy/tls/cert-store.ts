// The certificates of one TLS listener: loads and checks the PEM files, picks a certificate by SNI,
// and swaps in replaced files for new handshakes while open connections keep the old ones.

import { createHash, createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  createSecureContext,
  type SecureContext,
  type SecureContextOptions,
  type Server,
  type TlsOptions,
} from 'node:tls';
import type { Logger } from 'pino';
import { type Clock, systemClock, type TimerHandle } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import { subjectAltNames, unquote } from '../../lib/subject-alt-name.js';
import type { TlsVersion } from './profiles.js';

export interface TlsCertificateFiles {
  /** Path to the PEM certificate, optionally followed by its intermediates. */
  cert: string;
  /** Path to the PEM private key (unencrypted). */
  key: string;
  /** Names this certificate answers for; "*.example.com" matches one label. Empty: taken from the certificate. */
  serverNames: string[];
}

export interface TlsListenerSettings {
  /** At least one; the first answers clients without SNI or with a name no certificate claims. */
  certificates: TlsCertificateFiles[];
  minVersion: TlsVersion;
  /** Cipher suites, key-exchange groups and options (a profile's: see profiles.ts); Node's defaults when absent. */
  ciphers?: string;
  ecdhCurve?: string;
  honorCipherOrder?: boolean;
  /** Verify client certificates against the CA bundle at `ca`; `required` refuses clients without one. */
  clientCertificate?: { ca: string; required: boolean };
  /** ALPN protocols in order of preference; empty for plain TCP. */
  alpn: string[];
}

export interface CertStoreDeps {
  logger: Logger;
  /** Told the outcome of every reload that changed something: true swapped, false kept the old files. */
  onReload?: (ok: boolean) => void;
  clock?: Clock;
  /** Quiet time after a directory event before the files are read; cert and key land one by one. */
  debounceMs?: number;
  /** Interval of the content-hash poll that backs up fs.watch. */
  pollMs?: number;
}

export interface CertificateDescription {
  serverNames: string[];
  subject: string;
  notAfter: string;
}

/** PEM certificates and keys are a few KiB and CA bundles a few hundred; anything larger is a wrong path. */
const MAX_FILE_BYTES = 1024 * 1024;

const CODE = 'PILLION_ERR_TLS_FILE';

/** Carries the offending path to the reload log line without parsing it back out of the message. */
class TlsFileError extends PillionError {
  readonly file: string;

  constructor(file: string, message: string, cause?: unknown) {
    super(CODE, message, cause === undefined ? undefined : { cause });
    this.file = file;
  }
}

interface Entry {
  names: string[];
  subject: string;
  notAfter: string;
  context: SecureContext;
  contextOptions: SecureContextOptions;
}

/** One consistent set of contexts; a reload builds a new one and swaps the reference. */
interface Loaded {
  hash: string;
  entries: Entry[];
  exact: Map<string, Entry>;
  /** Keyed by the part after "*.", so a lookup strips one label. */
  wildcard: Map<string, Entry>;
}

export class CertStore {
  #settings: TlsListenerSettings;
  #logger: Logger;
  #onReload: ((ok: boolean) => void) | undefined;
  #clock: Clock;
  #debounceMs: number;
  #pollMs: number;
  /** Shared by every context and kept across reloads, so session tickets survive a rotation. */
  #ticketKeys: Buffer;
  #loaded: Loaded;
  #servers = new Set<Server>();
  #watchers: FSWatcher[] = [];
  #debounce: TimerHandle | undefined;
  #poll: TimerHandle | undefined;
  #watching = false;
  #closed = false;
  #chain: Promise<unknown> = Promise.resolve();
  /** Hash of files that failed to load, so a poll does not rebuild the same bad files again. */
  #failedHash: string | undefined;
  /** The last failure logged at warn; repeats go to debug until something changes. */
  #lastFailure: string | undefined;

  private constructor(
    settings: TlsListenerSettings,
    deps: CertStoreDeps,
    loaded: Loaded,
    ticketKeys: Buffer,
  ) {
    this.#settings = settings;
    this.#ticketKeys = ticketKeys;
    this.#logger = deps.logger;
    this.#onReload = deps.onReload;
    this.#clock = deps.clock ?? systemClock;
    this.#debounceMs = deps.debounceMs ?? 100;
    this.#pollMs = deps.pollMs ?? 5000;
    this.#loaded = loaded;
  }

  /** Reads and checks every file; throws PillionError PILLION_ERR_TLS_FILE naming the bad file. */
  static async load(settings: TlsListenerSettings, deps: CertStoreDeps): Promise<CertStore> {
    if (settings.certificates.length === 0) {
      throw new PillionError(CODE, 'a TLS listener needs at least one certificate');
    }
    const ticketKeys = randomBytes(48);
    const loaded = build(settings, await readAll(settings), ticketKeys);
    return new CertStore(settings, deps, loaded, ticketKeys);
  }

  /** Options for tls.createServer: default cert/key/CA, SNICallback, minVersion, ALPN, client-cert checks. */
  serverOptions(): TlsOptions {
    const settings = this.#settings;
    const options: TlsOptions = {
      ...this.#defaultEntry().contextOptions,
      SNICallback: (servername, cb) => cb(null, this.#select(servername).context),
    };
    if (settings.alpn.length > 0) options.ALPNProtocols = [...settings.alpn];
    if (settings.clientCertificate) {
      options.requestCert = true;
      options.rejectUnauthorized = settings.clientCertificate.required;
    } else {
      options.requestCert = false;
    }
    return options;
  }

  /**
   * Watches the files' directories and polls their contents; a change swaps the contexts for new
   * handshakes, including the server's default one. Open connections keep what they negotiated.
   */
  watch(server: Server): void {
    if (this.#closed) return;
    this.#servers.add(server);
    if (this.#watching) return;
    this.#watching = true;
    // Directories, not files: a rename or a `..data` symlink swap leaves a file watch on the old inode.
    for (const dir of new Set(filesOf(this.#settings).map((f) => dirname(f.path)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on('error', (err) => {
          this.#logger.debug({ err, dir }, 'tls directory watch failed; polling continues');
          w.close();
        });
        this.#watchers.push(w);
      } catch (err) {
        this.#logger.debug({ err, dir }, 'cannot watch tls directory; polling continues');
      }
    }
    this.#schedulePoll();
  }

  /** Re-reads now: true when the files on disk are in use, false when they were bad and the old stay. */
  reload(): Promise<boolean> {
    return this.#enqueue(() => this.#reload(false));
  }

  /** Names, subject and expiry of the loaded certificates, for logs and /config. */
  describe(): CertificateDescription[] {
    return this.#loaded.entries.map((e) => ({
      serverNames: [...e.names],
      subject: e.subject,
      notAfter: e.notAfter,
    }));
  }

  /** Stops watching; the loaded contexts stay usable. */
  close(): void {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    this.#debounce?.cancel();
    this.#poll?.cancel();
    this.#servers.clear();
  }

  #defaultEntry(): Entry {
    return this.#loaded.entries[0]!;
  }

  /** Exact name first, then a wildcard one label up, else the default certificate. */
  #select(servername: string): Entry {
    const { exact, wildcard } = this.#loaded;
    const name = normalizeName(servername);
    const hit = exact.get(name);
    if (hit) return hit;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = wildcard.get(name.slice(dot + 1));
      if (wild) return wild;
    }
    return this.#defaultEntry();
  }

  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  async #reload(fromWatch: boolean): Promise<boolean> {
    let files: Map<string, Buffer>;
    try {
      files = await readAll(this.#settings);
    } catch (err) {
      return this.#failed(err);
    }
    const hash = hashFiles(files);
    if (hash === this.#loaded.hash) {
      // back to the files in use (a bad edit undone): a later failure is news again
      this.#failedHash = undefined;
      this.#lastFailure = undefined;
      return true;
    }
    if (fromWatch && hash === this.#failedHash) return false;
    let next: Loaded;
    try {
      next = build(this.#settings, files, this.#ticketKeys);
    } catch (err) {
      this.#failedHash = hash;
      return this.#failed(err);
    }
    this.#loaded = next;
    this.#failedHash = undefined;
    this.#lastFailure = undefined;
    for (const server of this.#servers) {
      // Clients without SNI never reach SNICallback; they get the server's own default context.
      server.setSecureContext(this.#defaultEntry().contextOptions);
    }
    this.#logger.info({ certificates: this.describe() }, 'tls certificates reloaded');
    this.#notify(true);
    return true;
  }

  #failed(err: unknown): false {
    const file = err instanceof TlsFileError ? err.file : undefined;
    const message = err instanceof Error ? err.message : String(err);
    const fields = { code: CODE, file };
    if (message === this.#lastFailure) {
      this.#logger.debug(fields, `${message}; still using the previous certificates`);
    } else {
      this.#lastFailure = message;
      this.#logger.warn(fields, `${message}; still using the previous certificates`);
    }
    this.#notify(false);
    return false;
  }

  #notify(ok: boolean): void {
    try {
      this.#onReload?.(ok);
    } catch (err) {
      this.#logger.warn({ err }, 'tls reload listener failed');
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#debounce?.cancel();
    this.#debounce = this.#clock.setTimeout(() => void this.#check(), this.#debounceMs);
  }

  #schedulePoll(): void {
    if (this.#closed) return;
    this.#poll = this.#clock.setTimeout(() => {
      void this.#check().finally(() => this.#schedulePoll());
    }, this.#pollMs);
  }

  /** The watcher's entry point: never rejects, whatever the files or the listener do. */
  async #check(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#enqueue(() => this.#reload(true));
    } catch (err) {
      this.#logger.warn({ err, code: CODE }, 'tls certificate check failed');
    }
  }
}

interface FileRef {
  path: string;
  what: string;
}

function filesOf(settings: TlsListenerSettings): FileRef[] {
  const refs: FileRef[] = [];
  for (const c of settings.certificates) {
    refs.push({ path: c.cert, what: 'tls certificate' }, { path: c.key, what: 'tls key' });
  }
  if (settings.clientCertificate) refs.push({ path: settings.clientCertificate.ca, what: 'tls client CA' });
  return refs;
}

async function readAll(settings: TlsListenerSettings): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const ref of filesOf(settings)) {
    if (!files.has(ref.path)) files.set(ref.path, await readBounded(ref));
  }
  return files;
}

async function readBounded({ path, what }: FileRef): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
    const st = await handle.stat();
    if (!st.isFile()) throw new TlsFileError(path, `${what} ${path}: not a regular file`);
    if (st.size > MAX_FILE_BYTES) {
      throw new TlsFileError(path, `${what} ${path}: larger than ${MAX_FILE_BYTES} bytes`);
    }
    const data = await handle.readFile();
    if (data.length > MAX_FILE_BYTES) {
      throw new TlsFileError(path, `${what} ${path}: larger than ${MAX_FILE_BYTES} bytes`);
    }
    return data;
  } catch (err) {
    if (err instanceof TlsFileError) throw err;
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new TlsFileError(path, `${what} ${path}: cannot read (${reason})`, err);
  } finally {
    await handle?.close();
  }
}

function hashFiles(files: Map<string, Buffer>): string {
  const h = createHash('sha256');
  for (const [path, data] of files) h.update(`${path}\0${data.length}\0`).update(data);
  return h.digest('hex');
}

/** Parses and cross-checks every file and builds each SecureContext once; throws TlsFileError. */
function build(settings: TlsListenerSettings, files: Map<string, Buffer>, ticketKeys: Buffer): Loaded {
  let ca: Buffer | undefined;
  if (settings.clientCertificate) {
    const path = settings.clientCertificate.ca;
    ca = files.get(path)!;
    parseCertificate(path, ca, 'tls client CA');
  }
  const entries: Entry[] = [];
  const exact = new Map<string, Entry>();
  const wildcard = new Map<string, Entry>();
  for (const c of settings.certificates) {
    const cert = files.get(c.cert)!;
    const key = files.get(c.key)!;
    const x509 = parseCertificate(c.cert, cert, 'tls certificate');
    const privateKey = parseKey(c.key, key);
    let matches = false;
    try {
      matches = x509.checkPrivateKey(privateKey);
    } catch {
      // a key of another type than the certificate's: a mismatch like any other
    }
    if (!matches) throw new TlsFileError(c.key, `key ${c.key} does not match certificate ${c.cert}`);
    const contextOptions: SecureContextOptions = {
      cert,
      key,
      minVersion: settings.minVersion,
      ciphers: settings.ciphers,
      ecdhCurve: settings.ecdhCurve,
      honorCipherOrder: settings.honorCipherOrder,
      // OpenSSL refuses to resume sessions that verified a client certificate without an id context.
      sessionIdContext: createHash('sha256').update(`pillion:${c.cert}`).digest('hex').slice(0, 32),
      ticketKeys,
    };
    // Each SNI context verifies clients on its own, so each carries the CA bundle.
    if (ca) contextOptions.ca = ca;
    let context: SecureContext;
    try {
      context = createSecureContext(contextOptions);
    } catch (err) {
      throw new TlsFileError(
        c.cert,
        `tls certificate ${c.cert} with key ${c.key}: cannot be used for TLS (${(err as Error).message})`,
        err,
      );
    }
    const names = (c.serverNames.length > 0 ? c.serverNames : namesFromCertificate(x509)).map(normalizeName);
    const entry: Entry = {
      names,
      subject: x509.subject.split('\n').join(', '),
      notAfter: isoDate(x509.validTo),
      context,
      contextOptions,
    };
    entries.push(entry);
    // The first certificate to claim a name keeps it, as the list order is the operator's priority.
    for (const name of names) {
      if (name.startsWith('*.')) {
        const parent = name.slice(2);
        if (parent && !wildcard.has(parent)) wildcard.set(parent, entry);
      } else if (!exact.has(name)) {
        exact.set(name, entry);
      }
    }
  }
  return { hash: hashFiles(files), entries, exact, wildcard };
}

function parseCertificate(path: string, pem: Buffer, what: string): X509Certificate {
  // X509Certificate also takes DER, but tls.createSecureContext wants PEM, so insist on PEM here.
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsFileError(path, `${what} ${path}: not a PEM certificate`);
  }
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsFileError(path, `${what} ${path}: not a PEM certificate`, err);
  }
}

function parseKey(path: string, pem: Buffer): KeyObject {
  if (!pem.includes('-----BEGIN') || !pem.includes('PRIVATE KEY-----')) {
    throw new TlsFileError(path, `tls key ${path}: not a PEM private key`);
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new TlsFileError(
      path,
      `tls key ${path}: not a usable PEM private key (encrypted keys are not supported)`,
      err,
    );
  }
}

/** SAN DNS entries, or the subject CN when there are none; SNI never carries IP addresses. */
function namesFromCertificate(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const e of subjectAltNames(x509.subjectAltName)) if (e.type === 'DNS') names.push(e.value);
  if (names.length > 0) return names;
  for (const line of x509.subject.split('\n')) {
    if (line.startsWith('CN=')) names.push(unquote(line.slice(3)));
  }
  return names;
}

function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function isoDate(opensslDate: string): string {
  const t = Date.parse(opensslDate);
  return Number.isNaN(t) ? opensslDate : new Date(t).toISOString();
}
