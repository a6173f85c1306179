// Schema of the `identity:` section: who this workload is (a SPIFFE ID), and where its certificate
// comes from: a local CA it issues and renews its own certificate from, or files another tool
// (cert-manager, a Vault agent) keeps current.

import { z } from 'zod';
import { addPillionIssue, duration } from '../config/index.js';

const NAME = /^[A-Za-z0-9._-]+$/;

export const identitySchema = z
  .strictObject({
    trustDomain: z
      .string()
      .regex(/^[a-z0-9._-]{1,255}$/, 'a trust domain is lower-case letters, digits, ".", "-" and "_"')
      .optional()
      .describe(
        'SPIFFE trust domain; default cluster.local. With `files`, when set, the certificate must carry it.',
      ),
    namespace: z
      .string()
      .regex(NAME, 'letters, digits, ".", "-" and "_"')
      .optional()
      .describe(
        'Namespace part of the SPIFFE ID (`/ns/<namespace>`); default `default`. With `files`, when set, the certificate must carry it.',
      ),
    serviceAccount: z
      .string()
      .regex(NAME, 'letters, digits, ".", "-" and "_"')
      .optional()
      .describe(
        'Service-account part of the SPIFFE ID (`/sa/<serviceAccount>`); default `default`. With `files`, when set, the certificate must carry it.',
      ),
    ca: z
      .strictObject({
        dir: z.string().min(1).describe('Directory of a CA made by `pillion ca init` (ca.crt, ca.key).'),
        ttl: duration({ min: '1m', max: '8760h' })
          .prefault('24h')
          .describe('Lifetime of each workload certificate; it is renewed at 2/3 of it.'),
      })
      .optional()
      .describe(
        'Issue the workload certificate from this local CA at start, and renew it at 2/3 of its lifetime. Open connections keep the certificate they began with; new handshakes get the new one.',
      ),
    files: z
      .strictObject({
        cert: z
          .string()
          .min(1)
          .describe('PEM workload certificate (a SPIFFE ID as URI SAN), chain after it.'),
        key: z.string().min(1).describe('PEM private key of the certificate.'),
        bundle: z.string().min(1).describe('PEM trust bundle: the CA certificates peers are verified with.'),
      })
      .optional()
      .describe(
        "Certificate, key and trust bundle kept current by another tool (cert-manager's csi-driver-spiffe, a Vault agent): read at start and whenever they change on disk.",
      ),
  })
  .superRefine((s, ctx) => {
    if ((s.ca === undefined) === (s.files === undefined))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'identity needs exactly one of `ca` (issue from a local CA) or `files` (certificate files kept by another tool)',
        'e.g. ca: { dir: /etc/pillion/ca } after `pillion ca init --dir /etc/pillion/ca`',
      );
  })
  .describe(
    "The workload's identity for mutual TLS: a SPIFFE ID `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>` and its certificate.",
  );

export type IdentityConfig = z.output<typeof identitySchema>;
