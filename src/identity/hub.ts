// The workload identity as the proxy sees it: the current certificate, key and trust bundle, and a
// way to hear of the next one. One hub per process (per runtime), found through the modules'
// shared services; it outlives a restart of the identity module, so listeners keep their handle.

export interface IdentityMaterial {
  /** PEM leaf certificate (chain after it). */
  cert: string;
  /** PEM private key. Never logged, never shown. */
  key: string;
  /** PEM trust bundle peers are verified with. */
  bundle: string;
  spiffeId: string;
  /** The SPIFFE ID without `spiffe://`, as Istio writes principals. */
  principal: string;
  notBefore: Date;
  notAfter: Date;
  serial: string;
  source: 'ca' | 'files';
}

const KEY = 'pillion.identity';

export class IdentityHub {
  #material: IdentityMaterial | undefined;
  #listeners = new Set<(m: IdentityMaterial) => void>();

  current(): IdentityMaterial | undefined {
    return this.#material;
  }

  /**
   * Publishes a new certificate; every subscriber hears of it before this returns, and the first
   * subscriber's failure, if any, is thrown after all have heard.
   */
  publish(m: IdentityMaterial): void {
    this.#material = m;
    let failure: unknown;
    for (const fn of this.#listeners) {
      try {
        fn(m);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /** Calls fn with each new certificate; returns the unsubscribe. */
  subscribe(fn: (m: IdentityMaterial) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
}

/** The hub of these shared services, made on first use. */
export function identityHub(services: Map<string, unknown>): IdentityHub {
  let hub = services.get(KEY) as IdentityHub | undefined;
  if (hub === undefined) {
    hub = new IdentityHub();
    services.set(KEY, hub);
  }
  return hub;
}
