// The whole pillion.yaml: each section's schema comes from the capability that owns it.

import { z } from 'zod';
import { adminSchema } from '../admin/index.js';
import { logsSchema } from '../logs/index.js';
import { policiesSchema } from '../policies/index.js';
import { inboundSchema, outboundSchema } from '../proxy/index.js';
import { resolve } from 'node:path';
import type { IstioTranslation } from '../policies/index.js';
import {
  addPillionIssue,
  compareIssues,
  type ConfigIssue,
  type Env,
  type JsonSchema,
  type LoadResult,
  loadConfigFile,
  parseConfigText,
  type PlannedLookup,
  renderConfigDocs,
  toJsonSchema,
} from '../config/index.js';
import { plannedKey } from '../roles.js';
import { appSchema, runtimeSchema } from './config.js';

/** Sections and keys of roles that are planned but not built: refused as such, not as typos. */
const planned: PlannedLookup = (path) => plannedKey(path)?.what;

export const pillionSchema = z
  .strictObject({
    runtime: runtimeSchema,
    admin: adminSchema,
    app: appSchema.optional(),
    inbound: inboundSchema.optional(),
    outbound: outboundSchema.optional(),
    logs: logsSchema.optional(),
    policies: policiesSchema.optional(),
  })
  .superRefine((c, ctx) => {
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
  .describe('pillion.yaml: one file for every role of the sidecar. Every section is optional.');

export type PillionConfig = z.output<typeof pillionSchema>;

export interface ConfigExtras {
  /** Istio resource files given on the command line (`pillion run --istio`), beside policies.istio. */
  istio?: readonly string[];
}

export async function loadPillionConfig(
  file: string,
  env: Env,
  extras: ConfigExtras = {},
): Promise<LoadResult<PillionConfig>> {
  const loaded = await loadConfigFile(file, { schema: pillionSchema, env, planned });
  return withIstio(loaded, file, extras);
}

/**
 * Reads the Istio resources the config (or the command line) names and folds them into the
 * inbound section's own keys, then validates the result once more: one model at run time.
 */
export async function withIstio(
  loaded: LoadResult<PillionConfig>,
  file: string | undefined,
  extras: ConfigExtras,
): Promise<LoadResult<PillionConfig>> {
  if (!loaded.ok) return loaded;
  const { config, raw } = loaded;
  const cli = extras.istio ?? [];
  if ((config.policies?.istio.length ?? 0) === 0 && cli.length === 0) return loaded;
  const here = (message: string, code: ConfigIssue['code'] = 'PILLION_ERR_CONFIG_BAD_VALUE'): ConfigIssue => {
    const pos = positionIn(loaded.text, 'policies');
    return { file: file ?? '(command line)', ...pos, code, path: 'policies', message };
  };
  if (!config.inbound)
    return {
      ok: false,
      issues: [
        here(
          'Istio policies apply to the inbound proxy; add an inbound section (listeners in front of the app)',
        ),
      ],
      text: loaded.text,
    };
  const { loadIstioFiles, baseOf } = await import('../policies/istio.js');
  const p = config.policies;
  const r = await loadIstioFiles(
    [...(p?.istio ?? []).map((f) => resolve(baseOf(file), f)), ...cli.map((f) => resolve(f))],
    baseOf(file),
    {
      workloadLabels: p?.workloadLabels ?? {},
      namespace: p?.namespace,
      rootNamespace: p?.rootNamespace ?? 'istio-system',
      providers: Object.keys(config.inbound.authorization?.providers ?? {}),
    },
  );
  if (!r.ok) return { ok: false, issues: r.issues.sort(compareIssues), text: loaded.text };
  const t = r.translation;
  type Section = Record<string, unknown> & { issuers?: unknown[]; policies?: unknown[] };
  const inbound = structuredClone(raw.inbound ?? {}) as Record<string, unknown>;
  const extend = (key: 'jwt' | 'authorization', list: 'issuers' | 'policies', items: unknown[]) => {
    if (items.length === 0) return;
    const section = (inbound[key] ?? {}) as Section;
    inbound[key] = { ...section, [list]: [...(section[list] ?? []), ...items] };
  };
  extend('jwt', 'issuers', t.jwtIssuers);
  extend('authorization', 'policies', t.policies);
  if (t.mtls) {
    // Inbound mTLS modes come with workload identities; until they are built, a PeerAuthentication
    // is refused where it stands, as inbound.mtls is in pillion.yaml.
    const role = plannedKey(['inbound', 'mtls']);
    if (role !== undefined)
      return {
        ok: false,
        issues: [
          {
            ...t.mtls.at,
            path: 'spec.mtls',
            message: `PeerAuthentication sets inbound.mtls, which is planned but not built yet: ${role.what}`,
          },
        ],
        text: loaded.text,
      };
    if (inbound.mtls !== undefined)
      return {
        ok: false,
        issues: [here('inbound.mtls is set both in pillion.yaml and by a PeerAuthentication')],
        text: loaded.text,
      };
    inbound.mtls = t.mtls.value;
  }
  const merged = { ...raw, inbound };
  const again = pillionSchema.safeParse(merged);
  if (!again.success)
    return {
      ok: false,
      issues: again.error.issues.map((i) =>
        here(`after adding the Istio resources: ${i.path.join('.')}: ${i.message}`),
      ),
      text: loaded.text,
    };
  istioResources.set(again.data, t.resources);
  return { ok: true, config: again.data, raw: merged, text: loaded.text };
}

/** The Istio resources each loaded config was built with (applied or not), for the admin API. */
export const istioResources = new WeakMap<PillionConfig, IstioTranslation['resources']>();

function positionIn(text: string, key: string): { line: number; col: number } {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${key}:`));
  return i === -1 ? { line: 1, col: 1 } : { line: i + 1, col: 1 };
}

export function parsePillionConfig(text: string, file: string, env: Env): LoadResult<PillionConfig> {
  return parseConfigText(text, file, { schema: pillionSchema, env, planned });
}

let cachedJsonSchema: JsonSchema | undefined;
export function pillionJsonSchema(): JsonSchema {
  cachedJsonSchema ??= toJsonSchema(pillionSchema, {
    id: 'urn:pillion:config',
    title: 'Pillion sidecar configuration (pillion.yaml)',
  });
  return cachedJsonSchema;
}

const CONFIG_DOCS_INTRO = `
Every key of \`pillion.yaml\`, generated from the schema the loader validates against. All
sections are optional; a missing key takes its default.

- **Durations** are written with a unit: \`250ms\`, \`2s\`, \`1m\`, \`1h\`, \`1m30s\`.
- **Sizes** carry a byte unit: \`512B\`, \`64KiB\`, \`10MB\`, \`1GiB\` (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000).
- **Addresses** are \`host:port\`: \`127.0.0.1:8080\`, \`:8080\` (every interface), \`[::1]:8080\`.
- **Environment variables**: \`\${VAR}\` and \`\${VAR:-default}\` anywhere in a value; \`$\${\` writes a literal \`\${\`.
  An unquoted value that is exactly one reference takes the type of what it expands to (\`port: \${PORT}\` is a number).
- **Editors**: \`pillion schema > pillion.schema.json\` and start the file with
  \`# yaml-language-server: $schema=./pillion.schema.json\` for completion and checks.
- **Errors** are reported all at once as \`file:line:col CODE path: message (hint)\`; codes are listed in [errors.md](errors.md).

Sections and keys of roles that are planned but not built yet (\`metrics\`, \`sync\`; \`inbound.mtls\`,
route \`retries\` and \`timeout\`, an upstream's \`circuitBreaker\`, ...) are refused with
\`PILLION_ERR_CONFIG_UNSUPPORTED_SECTION\` or \`PILLION_ERR_CONFIG_NOT_BUILT_YET\` at their line:col, never ignored.
`;

export function pillionConfigDocs(): string {
  return renderConfigDocs(pillionJsonSchema(), CONFIG_DOCS_INTRO);
}
