// For the filter tests: a CA, a server certificate for localhost, and client certificates with
// SPIFFE identities (URI SANs) as a mesh issues them, written to a temporary directory.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, makeClientLeaf, makeLeaf, type TestPair } from '../tls/test-certs.js';

export interface WorkloadCerts {
  caPem: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  order: TestPair;
  refund: TestPair;
  billing: TestPair;
  cleanup(): Promise<void>;
}

export async function workloadCerts(): Promise<WorkloadCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'pillion-workload-'));
  const ca = await makeCa({ commonName: 'cluster.local' });
  const server = await makeLeaf(ca, { names: ['localhost', '127.0.0.1'] });
  const id = (sa: string) => makeClientLeaf(ca, { names: [`spiffe://cluster.local/ns/production/sa/${sa}`] });
  const [order, refund, billing] = await Promise.all([
    id('order-service'),
    id('refund-service'),
    id('billing'),
  ]);
  const file = async (name: string, text: string) => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };
  return {
    caPem: ca.cert,
    caFile: await file('ca.pem', ca.cert),
    serverCert: await file('server.pem', server.cert),
    serverKey: await file('server-key.pem', server.key),
    order,
    refund,
    billing,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
