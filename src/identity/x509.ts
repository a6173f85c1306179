// @peculiar/x509, loaded on first use: only `pillion ca` and a sidecar that issues its own
// certificate pay for it (and for the Reflect metadata polyfill its dependency injection needs).

import { webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

let loading: Promise<typeof X509> | undefined;

export function loadX509(): Promise<typeof X509> {
  loading ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    // Node's webcrypto is the Web Crypto API the library expects; the DOM type is not in this build's lib.
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return loading;
}

export type { X509 };
