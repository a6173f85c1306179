// The whole pillion.yaml: each section's schema comes from the capability that owns it.

import { z } from 'zod';
import { adminSchema } from '../admin/index.js';
import { logsSchema } from '../logs/index.js';
import { inboundSchema, outboundSchema } from '../proxy/index.js';
import { syncSchema } from '../sync/index.js';
import {
  addPillionIssue,
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
    sync: syncSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.sync?.rollback && !c.app)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        "sync.rollback watches the app's health check, but there is no app section",
        'add `app: { port: ..., health: ... }`, or remove rollback',
        ['sync', 'rollback'],
      );
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

export function loadPillionConfig(file: string, env: Env): Promise<LoadResult<PillionConfig>> {
  return loadConfigFile(file, { schema: pillionSchema, env, planned });
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

Sections and keys of roles that are planned but not built yet (\`metrics\`, \`policies\`; \`auth\`, \`jwt\`,
\`authorization\`, \`rateLimit\`, route \`retries\` and \`timeout\`, an upstream's \`circuitBreaker\`, ...) are refused with
\`PILLION_ERR_CONFIG_UNSUPPORTED_SECTION\` or \`PILLION_ERR_CONFIG_NOT_BUILT_YET\` at their line:col, never ignored.
`;

export function pillionConfigDocs(): string {
  return renderConfigDocs(pillionJsonSchema(), CONFIG_DOCS_INTRO);
}
