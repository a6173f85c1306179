// The local CA of `pillion ca`: a directory with an ECDSA P-256 root (ca.crt, and ca.key readable by
// its owner only) that issues short-lived SPIFFE workload certificates. Everything X.509 goes
// through @peculiar/x509; no ASN.1 is written by hand.

import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Clock, systemClock } from '../lib/clock.js';
import { writeFileAtomicSync } from '../lib/atomic-write.js';
import { PillionError } from '../lib/errors.js';
import { parseSpiffeId } from './spiffe.js';
import { loadX509, type X509 } from './x509.js';

const EC: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = {
  name: 'ECDSA',
  namedCurve: 'P-256',
  hash: 'SHA-256',
};
const HOUR = 3_600_000;
export const DEFAULT_CA_TTL_MS = 10 * 365 * 24 * HOUR;
export const DEFAULT_WORKLOAD_TTL_MS = 24 * HOUR;
/** Certificates start a minute in the past, so a peer whose clock runs a little behind accepts them. */
const BACKDATE_MS = 60_000;

export const CA_FILES = { cert: 'ca.crt', key: 'ca.key' } as const;

export interface IssueOptions {
  /** spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> */
  spiffeId: string;
  ttlMs?: number;
  /** Extra DNS names, for clients that check a host name (curl, browsers). */
  dnsNames?: string[];
}

export interface IssuedCertificate {
  /** The leaf certificate, PEM. */
  cert: string;
  /** Its private key, PKCS#8 PEM. */
  key: string;
  spiffeId: string;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

export class LocalCa {
  readonly dir: string;
  readonly trustDomain: string;
  /** The root certificate, PEM: the trust bundle. */
  readonly bundle: string;
  readonly notAfter: Date;
  #certificate: X509.X509Certificate;
  #signingKey: webcrypto.CryptoKey;
  #clock: Clock;

  private constructor(
    dir: string,
    trustDomain: string,
    bundle: string,
    certificate: X509.X509Certificate,
    signingKey: webcrypto.CryptoKey,
    clock: Clock,
  ) {
    this.dir = dir;
    this.trustDomain = trustDomain;
    this.bundle = bundle;
    this.#certificate = certificate;
    this.#signingKey = signingKey;
    this.#clock = clock;
    this.notAfter = certificate.notAfter;
  }

  /** Creates a CA in dir (made if missing); refuses to replace one unless `force`. */
  static async init(
    dir: string,
    opts: { trustDomain: string; ttlMs?: number; force?: boolean; clock?: Clock },
  ): Promise<LocalCa> {
    const bad = parseSpiffeId(`spiffe://${opts.trustDomain}`);
    if (typeof bad === 'string')
      throw new PillionError('PILLION_ERR_CA_BAD_IDENTITY', `trust domain "${opts.trustDomain}": ${bad}`);
    const certPath = join(dir, CA_FILES.cert);
    if (!opts.force && (existsSync(certPath) || existsSync(join(dir, CA_FILES.key))))
      throw new PillionError(
        'PILLION_ERR_CA_EXISTS',
        `${dir} already holds a CA (${CA_FILES.cert}); certificates it issued would stop verifying if it were replaced`,
      );
    const clock = opts.clock ?? systemClock;
    const x509 = await loadX509();
    const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    const now = clock.now();
    const name = `O=pillion, CN=pillion local CA ${opts.trustDomain}`;
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + (opts.ttlMs ?? DEFAULT_CA_TTL_MS)),
      signingAlgorithm: EC,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        // The trust domain as a SPIFFE CA names it.
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${opts.trustDomain}` }]),
      ],
    });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The key first: a crash between the two writes leaves no certificate without its key.
    writeFileAtomicSync(join(dir, CA_FILES.key), await keyPem(keys.privateKey), { mode: 0o600 });
    const pem = `${certificate.toString('pem')}\n`;
    writeFileAtomicSync(certPath, pem, { mode: 0o644 });
    return new LocalCa(dir, opts.trustDomain, pem, certificate, keys.privateKey, clock);
  }

  /** Opens the CA in dir; its key must be readable by its owner only, as ssh insists for keys. */
  static async open(dir: string, opts: { clock?: Clock } = {}): Promise<LocalCa> {
    const certPath = join(dir, CA_FILES.cert);
    const keyPath = join(dir, CA_FILES.key);
    if (!existsSync(certPath))
      throw new PillionError(
        'PILLION_ERR_CA_NOT_FOUND',
        `no CA in ${dir} (${CA_FILES.cert} is missing); create one with \`pillion ca init --dir ${dir}\``,
      );
    const pem = readCaFile(certPath);
    const keyText = readCaFile(keyPath);
    const mode = statSync(keyPath).mode & 0o777;
    if ((mode & 0o077) !== 0)
      throw new PillionError(
        'PILLION_ERR_CA_FILE',
        `${keyPath} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 ${keyPath}`,
      );
    let node: X509Certificate;
    try {
      node = new X509Certificate(pem);
      if (!node.checkPrivateKey(createPrivateKey(keyText)))
        throw new Error(`the key does not match the certificate`);
    } catch (err) {
      throw new PillionError('PILLION_ERR_CA_FILE', `CA in ${dir}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!node.ca) throw new PillionError('PILLION_ERR_CA_FILE', `${certPath} is not a CA certificate`);
    const x509 = await loadX509();
    const certificate = new x509.X509Certificate(pem);
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pemBody(keyText), EC, false, ['sign']);
    const uri = (node.subjectAltName ?? '').match(/URI:spiffe:\/\/([^,\s]+)/);
    if (!uri) throw new PillionError('PILLION_ERR_CA_FILE', `${certPath} names no SPIFFE trust domain`);
    return new LocalCa(dir, uri[1]!, pem, certificate, signingKey, opts.clock ?? systemClock);
  }

  /** Issues a workload certificate for a SPIFFE ID of this CA's trust domain. */
  async issue(opts: IssueOptions): Promise<IssuedCertificate> {
    const id = parseSpiffeId(opts.spiffeId);
    if (typeof id === 'string')
      throw new PillionError('PILLION_ERR_CA_BAD_IDENTITY', `"${opts.spiffeId}": ${id}`);
    if (id.trustDomain !== this.trustDomain)
      throw new PillionError(
        'PILLION_ERR_CA_BAD_IDENTITY',
        `"${opts.spiffeId}" is in trust domain ${id.trustDomain}; this CA signs for ${this.trustDomain}`,
      );
    if (id.path === '')
      throw new PillionError(
        'PILLION_ERR_CA_BAD_IDENTITY',
        `"${opts.spiffeId}" names only the trust domain; a workload needs a path such as /ns/default/sa/orders`,
      );
    const x509 = await loadX509();
    const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    const now = this.#clock.now();
    const notBefore = new Date(now - BACKDATE_MS);
    // A leaf never outlives the CA that vouches for it.
    const notAfter = new Date(
      Math.min(now + (opts.ttlMs ?? DEFAULT_WORKLOAD_TTL_MS), this.#certificate.notAfter.getTime()),
    );
    const names: X509.JsonGeneralName[] = [{ type: 'url', value: id.uri }];
    for (const dns of opts.dnsNames ?? []) names.push({ type: 'dns', value: dns });
    const serialNumber = serial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject: `O=${this.trustDomain}`,
      issuer: this.#certificate.subject,
      notBefore,
      notAfter,
      signingAlgorithm: EC,
      publicKey: keys.publicKey,
      signingKey: this.#signingKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        // Mesh certificates serve both ends of a connection, as Istio's do.
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.#certificate),
        // SPIFFE X.509-SVID: exactly one URI SAN, critical when the subject says nothing.
        new x509.SubjectAlternativeNameExtension(names, true),
      ],
    });
    return {
      cert: `${cert.toString('pem')}\n`,
      key: await keyPem(keys.privateKey),
      spiffeId: id.uri,
      notBefore,
      notAfter,
      serial: serialNumber,
    };
  }
}

function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PillionError(
      'PILLION_ERR_CA_FILE',
      `${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A positive 128-bit serial, unique per certificate as RFC 5280 asks. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}
