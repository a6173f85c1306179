// Certificates for tests: a CA, server leaves with DNS and IP names, and client leaves, all made
// in memory and returned as PEM, so proxy tests need no fixture files and no openssl binary.

import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';

// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
const x509: typeof X509 = await import('@peculiar/x509');

const ALG: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = {
  name: 'ECDSA',
  namedCurve: 'P-256',
  hash: 'SHA-256',
};
/** For leaves that need an RSA key: static-RSA and ECDHE-RSA suites are only offered with one. */
const RSA: webcrypto.RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
};
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A certificate and its private key, both PEM. */
export interface TestPair {
  cert: string;
  key: string;
}

/** A CA that can sign leaves; `cert` is the trust anchor to hand to clients or servers. */
export interface TestCa extends TestPair {
  readonly name: string;
  readonly keys: webcrypto.CryptoKeyPair;
  readonly certificate: X509.X509Certificate;
}

export interface LeafOptions {
  /** Subject alternative names; IPv4/IPv6 literals become IP entries, spiffe:// URIs URI entries, anything else DNS entries. */
  names?: string[];
  /** URI SANs (SPIFFE IDs). */
  uris?: string[];
  /** Subject CN; defaults to the first name, or "pillion-test-leaf". */
  commonName?: string;
  /** Extended key usage: a server certificate, a client certificate, or both. Default 'server'. */
  usage?: 'server' | 'client' | 'both';
  notBefore?: Date;
  notAfter?: Date;
  /** The leaf's key: ECDSA P-256 (default) or RSA 2048, usable for key encipherment too. */
  keyType?: 'ecdsa' | 'rsa';
}

export async function makeCa(opts: { commonName?: string; validDays?: number } = {}): Promise<TestCa> {
  const name = `CN=${opts.commonName ?? 'Pillion Test CA'}`;
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + (opts.validDays ?? 30) * DAY),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, keys, certificate, cert: certificate.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A leaf signed by `ca`; its `cert` holds the leaf only (the CA is the trust anchor). */
export async function makeLeaf(ca: TestCa, opts: LeafOptions = {}): Promise<TestPair> {
  const names = opts.names ?? [];
  const rsa = opts.keyType === 'rsa';
  const keys = rsa ? await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']) : await generateKeys();
  const usage = opts.usage ?? 'server';
  const eku: string[] = [];
  if (usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | (rsa ? x509.KeyUsageFlags.keyEncipherment : 0),
      true,
    ),
    new x509.ExtendedKeyUsageExtension(eku),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  const sans: X509.JsonGeneralName[] = names.map((value) => ({
    type: isIP(value) ? ('ip' as const) : value.startsWith('spiffe://') ? ('url' as const) : ('dns' as const),
    value,
  }));
  for (const value of opts.uris ?? []) sans.push({ type: 'url', value });
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.commonName ?? names[0] ?? 'pillion-test-leaf'}`,
    issuer: ca.certificate.subject,
    notBefore: opts.notBefore ?? new Date(Date.now() - HOUR),
    notAfter: opts.notAfter ?? new Date(Date.now() + 7 * DAY),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions,
  });
  return { cert: certificate.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A client certificate for mutual TLS, named by its CN (and optional SAN entries). */
export function makeClientLeaf(ca: TestCa, opts: Omit<LeafOptions, 'usage'> = {}): Promise<TestPair> {
  return makeLeaf(ca, { commonName: 'pillion-test-client', ...opts, usage: 'client' });
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
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
