// The identity role: gets the workload certificate at start (issued from a local CA, or read from
// files another tool keeps), publishes it to the hub the proxy's listeners and upstreams use, and
// keeps it current: renewed at 2/3 of its lifetime, or re-read when the files change.

import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { DirWatcher } from '../lib/dir-watcher.js';
import { PillionError } from '../lib/errors.js';
import { CounterFamily, family, GaugeFamily, type Registry } from '../metrics/index.js';
import type { Module, Readiness, ReloadResult } from '../runtime/module.js';
import type { IdentityConfig } from './config.js';
import type { IdentityHub, IdentityMaterial } from './hub.js';
import { parseSpiffeId, principalOf, spiffeUrisOf } from './spiffe.js';

export interface IdentityDeps {
  logger: Logger;
  metrics: Registry;
  clock: Clock;
  hub: IdentityHub;
}

/** Certificates and bundles are a few KiB; anything larger is a wrong path. */
const MAX_FILE_BYTES = 1024 * 1024;
/** Files are re-read this often even without a change event (network file systems raise none). */
const POLL_MS = 5000;
const RETRY_BASE_MS = 1000;
const RETRY_CAP_MS = 60_000;
const CODE = 'PILLION_ERR_IDENTITY_UNAVAILABLE';

export class IdentityModule implements Module<IdentityConfig> {
  #cfg: IdentityConfig;
  #deps: IdentityDeps;
  #timer: TimerHandle | undefined;
  #watcher: DirWatcher | undefined;
  #filesHash = '';
  #failures = 0;
  #lastError: string | undefined;
  #renewAt: number | undefined;
  #stopped = false;
  #busy: Promise<void> | undefined;
  #renewals: CounterFamily;
  #expiry: GaugeFamily;

  constructor(cfg: IdentityConfig, deps: IdentityDeps) {
    this.#cfg = cfg;
    this.#deps = deps;
    this.#renewals = family(
      deps.metrics,
      () =>
        new CounterFamily(
          'pillion_identity_certificate_updates_total',
          'Workload certificates issued or read (result="success"), and attempts that failed (result="failure") while the current one stayed in use.',
        ),
    );
    this.#expiry = family(
      deps.metrics,
      () =>
        new GaugeFamily(
          'pillion_identity_certificate_expiry_timestamp_seconds',
          'When the workload certificate in use expires, by SPIFFE ID.',
        ),
    );
  }

  async start(): Promise<void> {
    // The first certificate must come: without it mutual TLS cannot start, and saying so now beats
    // listeners that refuse every handshake.
    await this.#update();
    if (this.#cfg.files) {
      const f = this.#cfg.files;
      this.#watcher = new DirWatcher({ onEvent: () => this.#kick() });
      this.#watcher.sync(new Set([f.cert, f.key, f.bundle].map((p) => dirname(p))));
    }
    this.#schedule();
  }

  async reload(section: IdentityConfig): Promise<ReloadResult> {
    return JSON.stringify(section) === JSON.stringify(this.#cfg) ? 'applied' : 'restart-needed';
  }

  async drain(): Promise<void> {}

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#watcher?.close();
    await this.#busy;
  }

  readiness(): Readiness {
    const m = this.#deps.hub.current();
    if (m === undefined)
      return { ready: false, reason: `no workload certificate: ${this.#lastError ?? 'not read yet'}` };
    if (this.#deps.clock.now() >= m.notAfter.getTime())
      return {
        ready: false,
        reason: `the workload certificate expired at ${m.notAfter.toISOString()}: ${this.#lastError ?? ''}`,
      };
    return this.#lastError === undefined ? { ready: true } : { ready: true, reason: this.#lastError };
  }

  /** For the admin API: who this workload is and the state of its certificate; never the key. */
  status(): Record<string, unknown> {
    const m = this.#deps.hub.current();
    return {
      spiffeId: m?.spiffeId ?? null,
      principal: m?.principal ?? null,
      source: this.#cfg.ca ? { ca: this.#cfg.ca.dir } : { files: this.#cfg.files },
      serial: m?.serial ?? null,
      notBefore: m?.notBefore.toISOString() ?? null,
      notAfter: m?.notAfter.toISOString() ?? null,
      renewAt: this.#renewAt === undefined ? null : new Date(this.#renewAt).toISOString(),
      trustBundle: m ? bundleSubjects(m.bundle) : [],
      lastError: this.#lastError ?? null,
    };
  }

  /** A file event: read now (coalesced with a read in progress). */
  #kick(): void {
    if (this.#stopped || this.#busy) return;
    this.#timer?.cancel();
    this.#timer = this.#deps.clock.setTimeout(() => void this.#tick(), 50);
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#update();
    } catch (err) {
      this.#failed(err);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    const clock = this.#deps.clock;
    let delay: number;
    if (this.#failures > 0) {
      delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(this.#failures - 1, 16));
    } else if (this.#cfg.ca) {
      delay = Math.max(0, (this.#renewAt ?? clock.now()) - clock.now());
    } else {
      delay = POLL_MS;
    }
    this.#timer?.cancel();
    this.#timer = clock.setTimeout(() => void this.#tick(), delay);
  }

  async #update(): Promise<void> {
    const run = this.#cfg.ca ? this.#issue() : this.#readFiles();
    // stop() waits for it; its outcome is the caller's to handle.
    this.#busy = run.then(
      () => (this.#busy = undefined),
      () => (this.#busy = undefined),
    );
    await run;
  }

  async #issue(): Promise<void> {
    const ca = this.#cfg.ca!;
    const spiffeId = `spiffe://${this.#cfg.trustDomain ?? 'cluster.local'}/ns/${this.#cfg.namespace ?? 'default'}/sa/${this.#cfg.serviceAccount ?? 'default'}`;
    const clock = this.#deps.clock;
    const { LocalCa } = await import('./local-ca.js');
    let issued;
    let bundle: string;
    try {
      // Opened for every certificate: a CA rotated on disk is taken up at the next renewal.
      const local = await LocalCa.open(ca.dir, { clock });
      issued = await local.issue({ spiffeId, ttlMs: ca.ttl });
      bundle = local.bundle;
    } catch (err) {
      throw new PillionError(
        CODE,
        `issuing ${spiffeId} from the CA in ${ca.dir}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const now = clock.now();
    // Renewed at 2/3 of the time it has, as Istio's agent does: a third of the lifetime is left to
    // retry in if the CA is away.
    this.#renewAt = now + Math.floor(((issued.notAfter.getTime() - now) * 2) / 3);
    this.#publish({ ...issued, bundle, principal: principalOf(issued.spiffeId), source: 'ca' });
  }

  async #readFiles(): Promise<void> {
    const f = this.#cfg.files!;
    const [cert, key, bundle] = await Promise.all([f.cert, f.key, f.bundle].map(readBounded));
    const hash = createHash('sha256')
      .update(cert!)
      .update('\0')
      .update(key!)
      .update('\0')
      .update(bundle!)
      .digest('hex');
    if (hash === this.#filesHash) {
      this.#failures = 0;
      this.#lastError = undefined;
      return;
    }
    const m = checkFiles(f, cert!, key!, bundle!, this.#cfg);
    this.#filesHash = hash;
    this.#publish(m);
  }

  #publish(m: IdentityMaterial): void {
    const old = this.#deps.hub.current();
    this.#failures = 0;
    this.#lastError = undefined;
    this.#renewals.with({ result: 'success' }).value++;
    if (old) this.#expiry.remove({ spiffe_id: old.spiffeId });
    this.#expiry.with({ spiffe_id: m.spiffeId }).value = m.notAfter.getTime() / 1000;
    this.#deps.hub.publish(m);
    this.#deps.logger.info(
      { spiffeId: m.spiffeId, serial: m.serial, notAfter: m.notAfter.toISOString(), source: m.source },
      old ? 'workload certificate renewed' : 'workload certificate ready',
    );
  }

  #failed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#failures++;
    this.#renewals.with({ result: 'failure' }).value++;
    // The same failure again is news at debug only; the metric counts each.
    const level = message === this.#lastError ? 'debug' : 'warn';
    this.#lastError = message;
    const m = this.#deps.hub.current();
    this.#deps.logger[level](
      { code: CODE, expires: m?.notAfter.toISOString() },
      `${message}; the current workload certificate stays in use`,
    );
  }
}

async function readBounded(path: string): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new PillionError(
      CODE,
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  if (data.length > MAX_FILE_BYTES)
    throw new PillionError(CODE, `${path}: larger than ${MAX_FILE_BYTES} bytes`);
  return data.toString('utf8');
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Checks what cert-manager (or another tool) wrote: a leaf with one SPIFFE ID, its key, a bundle it chains to. */
function checkFiles(
  f: { cert: string; key: string; bundle: string },
  cert: string,
  key: string,
  bundle: string,
  cfg: IdentityConfig,
): IdentityMaterial {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new PillionError(CODE, `${f.cert}: not a PEM certificate`);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new PillionError(CODE, `${f.key}: not a usable PEM private key`);
  }
  if (!matches) throw new PillionError(CODE, `${f.key} does not match ${f.cert}`);
  const anchors = (bundle.match(PEM_CERT) ?? []).map((pem) => {
    try {
      return new X509Certificate(pem);
    } catch {
      throw new PillionError(CODE, `${f.bundle}: holds a certificate that does not parse`);
    }
  });
  if (anchors.length === 0) throw new PillionError(CODE, `${f.bundle}: no PEM certificate`);
  // The leaf, or the last intermediate sent after it, must be signed by an anchor.
  const chain = (cert.match(PEM_CERT) ?? []).map((pem) => new X509Certificate(pem));
  const top = chain[chain.length - 1] ?? leaf;
  if (!anchors.some((a) => top.checkIssued(a) && top.verify(a.publicKey)))
    throw new PillionError(CODE, `${f.cert} is not issued by a CA of ${f.bundle}`);
  const uris = spiffeUrisOf(leaf.subjectAltName);
  if (uris.length !== 1)
    throw new PillionError(
      CODE,
      `${f.cert} carries ${uris.length} SPIFFE IDs; a workload certificate carries exactly one`,
    );
  const id = parseSpiffeId(uris[0]!);
  if (typeof id === 'string') throw new PillionError(CODE, `${f.cert}: ${id}`);
  const want: [string, string | undefined, string][] = [
    ['trustDomain', cfg.trustDomain, id.trustDomain],
    ['namespace', cfg.namespace, id.namespace],
    ['serviceAccount', cfg.serviceAccount, id.serviceAccount],
  ];
  for (const [name, expected, got] of want)
    if (expected !== undefined && expected !== got)
      throw new PillionError(CODE, `${f.cert} is ${id.uri}, but identity.${name} is ${expected}`);
  return {
    cert,
    key,
    bundle,
    spiffeId: id.uri,
    principal: principalOf(id.uri),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    serial: leaf.serialNumber.toLowerCase(),
    source: 'files',
  };
}

function bundleSubjects(bundle: string): string[] {
  return (bundle.match(PEM_CERT) ?? []).map((pem) => {
    try {
      return new X509Certificate(pem).subject.split('\n').join(', ');
    } catch {
      return '(unparsable)';
    }
  });
}
