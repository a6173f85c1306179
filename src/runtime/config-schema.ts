// The whole pillion.yaml: the runtime's own sections (runtime, admin) and the sections of the
// roles, whose schemas the composition root (src/roles.ts) loads for the sections a file has.

import { z } from 'zod';
import type { AdminConfig } from '../admin/index.js';
import { adminSchema } from '../admin/index.js';
import { addPillionIssue } from '../config/index.js';
import type { IdentityConfig } from '../identity/config.js';
import type { IstioTranslation, PoliciesConfig } from '../policies/index.js';
import type { LogsConfig } from '../logs/index.js';
import type { MetricsConfig } from '../metrics/config.js';
import type { InboundConfig, OutboundConfig } from '../proxy/index.js';
import type { SyncConfig } from '../sync/config.js';
import { type AppConfig, type RuntimeConfig, runtimeSchema } from './config.js';

/** A valid pillion.yaml, with defaults filled in. Each role's section is present only when written. */
export interface PillionConfig {
  runtime: RuntimeConfig;
  admin: AdminConfig;
  app?: AppConfig | undefined;
  identity?: IdentityConfig | undefined;
  inbound?: InboundConfig | undefined;
  outbound?: OutboundConfig | undefined;
  logs?: LogsConfig | undefined;
  metrics?: MetricsConfig | undefined;
  policies?: PoliciesConfig | undefined;
  sync?: SyncConfig | undefined;
}

export interface ConfigExtras {
  /** Istio resource files given on the command line (`pillion run --istio`), beside policies.istio. */
  istio?: readonly string[];
}

/** The Istio resources each loaded config was built from, for GET /policies. */
export const istioResources = new WeakMap<PillionConfig, IstioTranslation['resources']>();

/**
 * The schema of pillion.yaml from the roles' schemas at hand. A role section in `known` without a
 * schema is accepted as a key (its data is never there: a section that is written has its schema
 * loaded), so a misspelt section still gets "did you mean".
 */
export function composePillionSchema(
  roles: Readonly<Record<string, z.ZodType>>,
  known: readonly string[],
): z.ZodType<PillionConfig> {
  const shape: Record<string, z.ZodType> = { runtime: runtimeSchema, admin: adminSchema };
  for (const section of known) shape[section] = (roles[section] ?? z.unknown()).optional();
  return z
    .strictObject(shape)
    .superRefine((value, ctx) => {
      const c = value as unknown as PillionConfig;
      if (c.sync?.rollback && !c.app)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_MISSING_KEY',
          "sync.rollback watches the app's health check, but there is no app section",
          'add `app: { port: ..., health: ... }`, or remove rollback',
          ['sync', 'rollback'],
        );
      // Mutual TLS speaks with the workload certificate: without an identity there is none.
      if (!c.identity) {
        const hint =
          'add `identity: { ca: { dir: ... } }` (after `pillion ca init`) or `identity: { files: ... }`';
        c.inbound?.listeners.forEach((l, i) => {
          // The proxy's listenerMtlsMode, written out here so the schema does not load the proxy.
          const mode =
            l.mtls?.mode ?? c.inbound!.mtls?.portLevel[String(l.address.port)]?.mode ?? c.inbound!.mtls?.mode;
          if (mode !== undefined && mode !== 'DISABLE')
            addPillionIssue(
              ctx,
              'PILLION_ERR_CONFIG_BAD_VALUE',
              `listener ${i} is mutual TLS ${mode}, but there is no identity section`,
              hint,
              ['inbound', ...(l.mtls ? ['listeners', i, 'mtls'] : ['mtls'])],
            );
        });
        for (const section of ['inbound', 'outbound'] as const)
          for (const [name, u] of Object.entries(c[section]?.upstreams ?? {}))
            if (u.tls?.mutual)
              addPillionIssue(
                ctx,
                'PILLION_ERR_CONFIG_BAD_VALUE',
                `upstream ${name} is mutual TLS, but there is no identity section`,
                hint,
                [section, 'upstreams', name, 'tls', 'mutual'],
              );
      }
      // The inbound proxy's `app` upstream is the app section's address.
      if (!c.inbound || c.app) return;
      // Routes serve HTTP listeners only: a TCP-only inbound has no use for the default route.
      const http = c.inbound.listeners.some((l) => l.mode === 'http');
      if (http)
        c.inbound.routes.forEach((r, i) => {
          if (r.upstream === 'app' || (r.upstream === undefined && r.directResponse === undefined))
            addPillionIssue(
              ctx,
              'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM',
              `route ${i} goes to the app, but there is no app section`,
              'add `app: { port: ... }`, or name an upstream in the route (without routes, every request goes to the app)',
              ['inbound', 'routes', i, 'upstream'],
            );
        });
      c.inbound.listeners.forEach((l, i) => {
        if (l.mode === 'tcp' && l.upstream === undefined)
          addPillionIssue(
            ctx,
            'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM',
            `tcp listener ${i} forwards to the app, but there is no app section`,
            "add `app: { port: ... }`, or set the listener's upstream",
            ['inbound', 'listeners', i, 'upstream'],
          );
      });
    })
    .describe(
      'pillion.yaml: one file for every role of the sidecar. Every section is optional.',
    ) as unknown as z.ZodType<PillionConfig>;
}
