// The composition root: every role of Pillion, the section of pillion.yaml it owns, and how to
// load its schema, its module and its `validate` checks. Each is a dynamic import(), so a role
// whose section is absent costs nothing: neither its code nor its dependencies are loaded.
// The runtime knows modules only through their contract; the CLI gets the roles from here.
// A new role is one entry in ROLES (and its section's type in runtime/config-schema.ts).
// Below them, the roles that are planned but not built yet, whose keys and commands the loader
// and the CLI refuse as "not built yet" rather than as typos.

import type { z } from 'zod';
import { type Env, type JsonSchema, type LoadResult, type PlannedLookup } from './config/index.js';
import {
  issuesInText,
  loadConfigFileWith,
  parseConfigTextWith,
  renderConfigDocs,
  toJsonSchema,
} from './config/index.js';
import type { PreflightIssue } from './lib/preflight.js';
import { composePillionSchema, type ConfigExtras, type PillionConfig } from './runtime/config-schema.js';
import type { ModuleDefinition, ModuleSource } from './runtime/module.js';

export interface Role {
  /** The top-level section of pillion.yaml it owns (and the name of its module). */
  readonly section: string;
  /** The section's schema. */
  schema(): Promise<z.ZodType>;
  /** Its module, run when the section is present; roles are started in this list's order. */
  module?(): Promise<ModuleDefinition<unknown>>;
  /** What `pillion validate` checks beyond the schema (files, directories), without binding a port. */
  preflight?(config: PillionConfig, env: Env): Promise<PreflightIssue[]>;
  /**
   * Checks every load runs after the schema (run, reload, validate): those that need a library
   * loaded on demand, or the environment the config runs in.
   */
  loadChecks?(config: PillionConfig, env: Env): Promise<PreflightIssue[]>;
}

const def = <S>(d: ModuleDefinition<S>) => d as unknown as ModuleDefinition<unknown>;

export const ROLES: readonly Role[] = [
  {
    section: 'app',
    schema: async () => (await import('./runtime/config.js')).appSchema,
    module: async () => def((await import('./runtime/app-health.js')).appModule()),
  },
  {
    // Before the proxy: its mutual TLS reads the workload certificate this role publishes.
    section: 'identity',
    schema: async () => (await import('./identity/config.js')).identitySchema,
    module: async () => def((await import('./identity/index.js')).identityModule()),
    preflight: async (c) => (await import('./identity/index.js')).identityPreflight(c.identity!),
  },
  {
    // Before the proxy and the logs: the files it renders are in place before they start.
    section: 'sync',
    schema: async () => (await import('./sync/config.js')).syncSchema,
    module: async () => def((await import('./sync/index.js')).syncModule()),
    loadChecks: async (c, env) => (await import('./sync/index.js')).syncLoadChecks(c.sync!, env),
  },
  {
    section: 'inbound',
    schema: async () => (await import('./proxy/config.js')).inboundSchema,
    module: async () => def((await import('./proxy/inbound.js')).inboundModule()),
    preflight: async (c) => (await import('./proxy/preflight.js')).proxyPreflight('inbound', c.inbound!),
    loadChecks: async (c) => transformChecks('inbound', c.inbound!.routes),
  },
  {
    section: 'outbound',
    schema: async () => (await import('./proxy/config.js')).outboundSchema,
    module: async () => def((await import('./proxy/outbound.js')).outboundModule()),
    preflight: async (c) => (await import('./proxy/preflight.js')).proxyPreflight('outbound', c.outbound!),
    loadChecks: async (c) => transformChecks('outbound', c.outbound!.routes),
  },
  {
    section: 'logs',
    schema: async () => (await import('./logs/config.js')).logsSchema,
    module: async () => def((await import('./logs/logs-module.js')).logsModule()),
    preflight: async (c, env) => (await import('./logs/preflight.js')).logsPreflight(c.logs!, env),
  },
  {
    section: 'metrics',
    schema: async () => (await import('./metrics/config.js')).metricsSchema,
    module: async () => def((await import('./metrics/metrics-module.js')).metricsModule()),
  },
  {
    // No module of its own: the Istio resources it names are folded into the inbound section's
    // keys when the config is loaded (withIstio), and the inbound proxy enforces them.
    section: 'policies',
    schema: async () => (await import('./policies/config.js')).policiesSchema,
  },
];

/** Route transforms' expressions compile (jsonata is loaded only when a route has one). */
async function transformChecks(
  section: string,
  routes: readonly { transform?: unknown }[],
): Promise<PreflightIssue[]> {
  if (!routes.some((r) => r.transform !== undefined)) return [];
  const { transformLoadChecks } = await import('./proxy/transform/index.js');
  return transformLoadChecks(section, routes as Parameters<typeof transformLoadChecks>[1]);
}

/** The modules the runtime may start, each loaded only when its section is present. */
export function roleModules(): ModuleSource[] {
  return ROLES.flatMap((r) => (r.module ? [{ name: r.section, load: r.module }] : []));
}

/** Sections and keys of roles that are planned but not built: refused as such, not as typos. */
const planned: PlannedLookup = (path) => plannedKey(path)?.what;

const composed = new Map<string, Promise<z.ZodType>>();

/** The schema of pillion.yaml with the schemas of these sections loaded (the others placeheld). */
export function pillionSchemaFor(sections: readonly string[]): Promise<z.ZodType> {
  const present = ROLES.filter((r) => sections.includes(r.section));
  const key = present.map((r) => r.section).join(',');
  let schema = composed.get(key);
  if (!schema) {
    schema = Promise.all(present.map(async (r) => [r.section, await r.schema()] as const)).then((loaded) =>
      composePillionSchema(
        Object.fromEntries(loaded),
        ROLES.map((r) => r.section),
      ),
    );
    composed.set(key, schema);
  }
  return schema;
}

export async function loadPillionConfig(
  file: string,
  env: Env,
  extras: ConfigExtras = {},
): Promise<LoadResult<PillionConfig>> {
  const loaded = (await loadConfigFileWith(file, {
    schemaFor: pillionSchemaFor,
    env,
    planned,
  })) as LoadResult<PillionConfig>;
  return withLoadChecks(await withIstioIfNamed(loaded, file, extras), file, env);
}

export async function parsePillionConfig(
  text: string,
  file: string,
  env: Env,
  extras?: ConfigExtras,
): Promise<LoadResult<PillionConfig>> {
  const loaded = (await parseConfigTextWith(text, file, {
    schemaFor: pillionSchemaFor,
    env,
    planned,
  })) as LoadResult<PillionConfig>;
  // Text is checked alone (the docs' examples) unless the command line names Istio files.
  return withLoadChecks(
    extras === undefined ? loaded : await withIstioIfNamed(loaded, file, extras),
    file,
    env,
  );
}

/** The present roles' load checks, their issues placed at their keys' line:col. */
async function withLoadChecks(
  loaded: LoadResult<PillionConfig>,
  file: string,
  env: Env,
): Promise<LoadResult<PillionConfig>> {
  if (!loaded.ok) return loaded;
  const present = ROLES.filter(
    (r) => r.loadChecks && (loaded.config as unknown as Record<string, unknown>)[r.section] !== undefined,
  );
  if (present.length === 0) return loaded;
  const found = (await Promise.all(present.map((r) => r.loadChecks!(loaded.config, env)))).flat();
  return found.length === 0
    ? loaded
    : { ok: false, issues: issuesInText(loaded.text, file, found), text: loaded.text };
}

/** Istio's security resources, named by policies.istio or the command line, folded into inbound. */
async function withIstioIfNamed(
  loaded: LoadResult<PillionConfig>,
  file: string,
  extras: ConfigExtras,
): Promise<LoadResult<PillionConfig>> {
  if (!loaded.ok || ((loaded.config.policies?.istio.length ?? 0) === 0 && (extras.istio?.length ?? 0) === 0))
    return loaded;
  const { withIstio } = await import('./policies/with-istio.js');
  return withIstio(loaded, file, extras, pillionSchemaFor);
}

/** The JSON Schema of the sections this config has (for /config's view with defaults and redactions). */
export async function pillionJsonSchemaOf(config: PillionConfig): Promise<JsonSchema> {
  return jsonSchema(await pillionSchemaFor(Object.keys(config)));
}

/** The JSON Schema of the whole of pillion.yaml (`pillion schema`, docs): every role's schema is loaded. */
export async function pillionJsonSchema(): Promise<JsonSchema> {
  return jsonSchema(await pillionSchemaFor(ROLES.map((r) => r.section)));
}

const jsonSchemas = new WeakMap<z.ZodType, JsonSchema>();
function jsonSchema(schema: z.ZodType): JsonSchema {
  let s = jsonSchemas.get(schema);
  if (!s) {
    s = toJsonSchema(schema, {
      id: 'urn:pillion:config',
      title: 'Pillion sidecar configuration (pillion.yaml)',
    });
    jsonSchemas.set(schema, s);
  }
  return s;
}

/** What `pillion validate` checks of the files and directories each present section names. */
export async function pillionPreflight(config: PillionConfig, env: Env): Promise<PreflightIssue[]> {
  const present = ROLES.filter(
    (r) => r.preflight && (config as unknown as Record<string, unknown>)[r.section] !== undefined,
  );
  return (await Promise.all(present.map((r) => r.preflight!(config, env)))).flat();
}

export async function pillionConfigDocs(): Promise<string> {
  return renderConfigDocs(await pillionJsonSchema(), CONFIG_DOCS_INTRO);
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

Sections and keys of roles that are planned but not built yet (a route's \`retryPolicy\`,
an upstream's \`circuitBreaker\`, ...) are refused with \`PILLION_ERR_CONFIG_UNSUPPORTED_SECTION\` or
\`PILLION_ERR_CONFIG_NOT_BUILT_YET\` at their line:col, never ignored.
`;

// ---------------------------------------------------------------------------------------------
// Planned roles

export interface PlannedRole {
  /** What the role brings, in the words of the README's "What is coming". */
  readonly what: string;
  /** Top-level sections it adds. */
  readonly sections: readonly string[];
  /**
   * Keys it adds inside existing sections, as dotted paths: `[]` stands for any list item, `*`
   * for any name (an upstream's, say).
   */
  readonly keys: readonly string[];
  /** `pillion <command>`s it adds. */
  readonly commands: readonly string[];
}

/** Empty while nothing is announced: a planned role's keys and commands are refused as not built yet. */
export const PLANNED_ROLES: readonly PlannedRole[] = [];

type Segment = string | number;

/** The planned role a config key belongs to, or undefined when it is not a planned key. */
export function plannedKey(path: readonly Segment[]): PlannedRole | undefined {
  if (path.length === 1) return PLANNED_ROLES.find((r) => r.sections.includes(String(path[0])));
  return PLANNED_ROLES.find((r) => r.keys.some((k) => matches(k, path)));
}

/** The planned role a command belongs to, or undefined. */
export function plannedCommand(name: string): PlannedRole | undefined {
  return PLANNED_ROLES.find((r) => r.commands.includes(name));
}

function matches(pattern: string, path: readonly Segment[]): boolean {
  const parts = pattern.replaceAll('[]', '.[]').split('.');
  return (
    parts.length === path.length &&
    parts.every((p, i) => {
      const seg = path[i];
      if (p === '[]') return typeof seg === 'number';
      if (p === '*') return typeof seg === 'string';
      return p === seg;
    })
  );
}
