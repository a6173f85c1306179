#!/usr/bin/env node
// Init container of the demo pod: makes a throwaway CA and a certificate for localhost, so the
// sidecar can serve HTTPS without any files checked in. Usage: make-cert.mjs <dir>
// A real pod mounts a cert-manager secret here instead; pillion picks up renewed files by itself.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCa, makeLeaf } from '../../dist/proxy/tls/test-certs.js';

const dir = process.argv[2] ?? '.';
mkdirSync(dir, { recursive: true });
const ca = await makeCa({ commonName: 'legacy-orders demo CA', validDays: 7 });
const leaf = await makeLeaf(ca, { names: ['localhost', '127.0.0.1'] });
writeFileSync(join(dir, 'ca.pem'), ca.cert);
writeFileSync(join(dir, 'tls.crt'), leaf.cert);
writeFileSync(join(dir, 'tls.key'), leaf.key, { mode: 0o600 });
console.log(`wrote ${dir}/tls.crt, tls.key (localhost, 127.0.0.1) and ca.pem`);
