// The identity capability's public surface: the `identity:` schema, the module (its code loaded
// only when the section is configured), the hub the proxy reads the workload certificate from,
// SPIFFE IDs and principals, and the local CA for `pillion ca`.

import type { Module, ModuleDefinition } from '../runtime/module.js';
import type { IdentityConfig } from './config.js';
import { identityHub } from './hub.js';

export { type IdentityConfig, identitySchema } from './config.js';
export { type IdentityHub, identityHub, type IdentityMaterial } from './hub.js';
export { peerPrincipal } from './principal.js';
export { parseSpiffeId, principalOf, type SpiffeId, spiffeUrisOf } from './spiffe.js';

/** What `pillion validate` checks of the section; loaded on use. */
export const identityPreflight = async (cfg: IdentityConfig) =>
  (await import('./preflight.js')).identityPreflight(cfg);

/** The local CA of `pillion ca`, with @peculiar/x509 behind it: loaded on use. */
export const loadLocalCa = () => import('./local-ca.js');

export function identityModule(): ModuleDefinition<IdentityConfig> {
  return {
    name: 'identity',
    section: (config) => config.identity,
    create: (section, ctx) => {
      const deps = {
        logger: ctx.logger,
        metrics: ctx.metrics,
        clock: ctx.clock,
        hub: identityHub(ctx.services),
      };
      let real: Module<IdentityConfig> | undefined;
      return {
        async start() {
          const { IdentityModule } = await import('./identity-module.js');
          real = new IdentityModule(section, deps);
          await real.start();
        },
        reload: (s) => real!.reload(s),
        drain: async (deadline) => real?.drain(deadline),
        stop: async () => real?.stop(),
        readiness: () => real?.readiness() ?? { ready: false, reason: 'identity starting' },
        status: () => real?.status?.(),
      };
    },
  };
}
