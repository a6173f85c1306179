// Reads Istio's security resources from multi-document YAML files, with positions, and translates
// them into pillion.yaml's own shapes: RequestAuthentication into `inbound.jwt.issuers`,
// AuthorizationPolicy into `inbound.authorization.policies`, PeerAuthentication into
// `inbound.mtls`. Selectors are matched against the workload labels Pillion is told; a resource
// for another workload or namespace is listed as not applied, never silently dropped.

import { dirname, resolve } from 'node:path';
import type { Document, LineCounter } from 'yaml';
import {
  type ConfigIssue,
  issueAt,
  type IssueSite,
  parseDocuments,
  readText,
  validateDocument,
} from '../config/index.js';
import {
  API_VERSIONS,
  type AuthorizationPolicyResource,
  ISTIO_SCHEMAS,
  KINDS,
  type Kind,
  type PeerAuthenticationResource,
  type RequestAuthenticationResource,
} from './istio-schema.js';
import {
  type DestinationRuleResource,
  TRAFFIC_API_VERSIONS,
  TRAFFIC_KINDS,
  TRAFFIC_SCHEMAS,
  type TrafficKind,
  type VirtualServiceResource,
} from './istio-traffic-schema.js';
import { translateDestinationRule, translateVirtualService, type UpstreamInfo } from './istio-traffic.js';

export interface IstioOptions {
  /** This workload's labels: resources with a selector apply when all its matchLabels are among them. */
  workloadLabels: Record<string, string>;
  /** This workload's namespace: resources of other namespaces (but the root one) do not apply. */
  namespace: string | undefined;
  rootNamespace: string;
  /** ext_authz providers pillion.yaml defines, for CUSTOM policies. */
  providers: readonly string[];
  /** The upstreams pillion.yaml defines (outbound's, then inbound's), for traffic resources' hosts. */
  upstreams: Record<string, UpstreamInfo>;
}

export interface LoadedResource {
  kind: Kind | TrafficKind;
  name: string;
  namespace: string | null;
  file: string;
  line: number;
  applied: boolean;
  /** Why it does not apply, when it does not. */
  reason?: string;
}

export interface MtlsSetting {
  mode: 'DISABLE' | 'PERMISSIVE' | 'STRICT';
  portLevel: Record<string, { mode: 'DISABLE' | 'PERMISSIVE' | 'STRICT' }>;
}

export interface IstioTranslation {
  jwtIssuers: Record<string, unknown>[];
  policies: Record<string, unknown>[];
  /** From the PeerAuthentication that applies, with where it stands. */
  mtls: { value: MtlsSetting; at: ConfigIssue } | undefined;
  /** Outbound routes from VirtualServices, and the keys DestinationRules set on upstreams. */
  routes: Record<string, unknown>[];
  upstreams: { upstream: string; patch: Record<string, unknown>; at: ConfigIssue }[];
  resources: LoadedResource[];
}

export type IstioResult = { ok: true; translation: IstioTranslation } | { ok: false; issues: ConfigIssue[] };

/** Loads every file (paths relative to `base`), all problems at once. */
export async function loadIstioFiles(
  files: readonly string[],
  base: string,
  opts: IstioOptions,
): Promise<IstioResult> {
  const issues: ConfigIssue[] = [];
  const t: IstioTranslation = {
    jwtIssuers: [],
    policies: [],
    mtls: undefined,
    routes: [],
    upstreams: [],
    resources: [],
  };
  const names = new Set<string>();
  let mtlsRank = -1;
  for (const f of files) {
    const file = resolve(base, f);
    const text = await readText(file);
    if (typeof text !== 'string') {
      issues.push(text);
      continue;
    }
    const parsed = parseDocuments(text, file);
    if (!parsed.ok) {
      issues.push(...parsed.issues);
      continue;
    }
    for (const doc of parsed.docs) {
      if (doc.contents === null) continue; // an empty document between two `---`
      const site: IssueSite = { file, doc, lc: parsed.lc };
      const r = readResource(doc, parsed.lc, site);
      if ('issues' in r) {
        issues.push(...r.issues);
        continue;
      }
      const { kind, value } = r;
      const at = (path: (string | number)[], message: string) =>
        issueAt(site, path, 'PILLION_ERR_CONFIG_BAD_VALUE', message);
      const ns = value.metadata.namespace;
      const rec: LoadedResource = {
        kind,
        name: value.metadata.name,
        namespace: ns ?? null,
        file,
        line: at([], '').line,
        applied: true,
      };
      t.resources.push(rec);
      const selector = (value.spec as { selector?: { matchLabels: Record<string, string> } }).selector;
      const notApplied = applies(selector?.matchLabels, ns, opts);
      if (notApplied !== undefined) {
        rec.applied = false;
        rec.reason = notApplied;
        continue;
      }
      const id = `${kind}/${ns ?? 'default'}/${value.metadata.name}`;
      if (names.has(id)) {
        issues.push(
          at(['metadata', 'name'], `a second ${kind} named ${ns ?? 'default'}/${value.metadata.name}`),
        );
        continue;
      }
      names.add(id);
      if (kind === 'VirtualService') {
        t.routes.push(
          ...translateVirtualService(value as VirtualServiceResource, opts.upstreams, at, issues),
        );
      } else if (kind === 'DestinationRule') {
        const d = translateDestinationRule(value as DestinationRuleResource, opts.upstreams, at, issues);
        if (d) {
          if (t.upstreams.some((x) => x.upstream === d.upstream))
            issues.push(at(['spec', 'host'], `a second DestinationRule for upstream ${d.upstream}`));
          else t.upstreams.push({ ...d, at: at([], `DestinationRule ${value.metadata.name}`) });
        }
      } else if (kind === 'RequestAuthentication') {
        t.jwtIssuers.push(
          ...translateRequestAuthentication(value as RequestAuthenticationResource, at, issues),
        );
      } else if (kind === 'AuthorizationPolicy') {
        const p = translateAuthorizationPolicy(value as AuthorizationPolicyResource, opts, at, issues);
        if (p) t.policies.push(p);
      } else {
        const pa = value as PeerAuthenticationResource;
        const m = translatePeerAuthentication(pa);
        // Istio's precedence: a workload-selecting resource over the namespace's over the root's.
        const rank = pa.spec.selector ? 2 : ns !== undefined && ns !== opts.rootNamespace ? 1 : 0;
        if (m && rank > mtlsRank) {
          mtlsRank = rank;
          t.mtls = { value: m, at: issueAt(site, ['spec'], 'PILLION_ERR_CONFIG_NOT_BUILT_YET', '') };
        }
      }
    }
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, translation: t };
}

/** Checks the resources of one text as loading would (kinds, fields, positions), without applying them. */
export function checkIstioText(text: string, file: string): ConfigIssue[] {
  const parsed = parseDocuments(text, file);
  if (!parsed.ok) return parsed.issues;
  const issues: ConfigIssue[] = [];
  for (const doc of parsed.docs) {
    if (doc.contents === null) continue;
    const r = readResource(doc, parsed.lc, { file, doc, lc: parsed.lc });
    if ('issues' in r) issues.push(...r.issues);
  }
  return issues;
}

type Read =
  | {
      kind: Kind | TrafficKind;
      value:
        | AuthorizationPolicyResource
        | RequestAuthenticationResource
        | PeerAuthenticationResource
        | VirtualServiceResource
        | DestinationRuleResource;
    }
  | { issues: ConfigIssue[] };

function readResource(doc: Document, lc: LineCounter, site: IssueSite): Read {
  const data = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown> | null;
  const kind = data?.kind;
  const traffic =
    typeof kind === 'string' &&
    (TRAFFIC_KINDS as readonly string[]).includes(kind) &&
    TRAFFIC_API_VERSIONS.includes(String(data?.apiVersion));
  if (
    !traffic &&
    (typeof kind !== 'string' ||
      !(KINDS as readonly string[]).includes(kind) ||
      !API_VERSIONS.includes(String(data?.apiVersion)))
  ) {
    const where = typeof kind === 'string' ? ['kind'] : [];
    return {
      issues: [
        issueAt(
          site,
          where,
          'PILLION_ERR_POLICY_UNKNOWN_KIND',
          `${String(data?.apiVersion ?? '?')} ${String(kind ?? '(no kind)')} is not an Istio resource Pillion reads`,
          `${KINDS.join(', ')} of ${API_VERSIONS.join(' or ')}; ${TRAFFIC_KINDS.join(', ')} of ${TRAFFIC_API_VERSIONS.join(', ')}`,
        ),
      ],
    };
  }
  const v = validateDocument(
    doc,
    lc,
    site.file,
    traffic ? TRAFFIC_SCHEMAS[kind as TrafficKind] : ISTIO_SCHEMAS[kind as Kind],
  );
  if (!v.ok)
    return {
      // An unsupported field is shown where its name is written, as an unknown one is.
      issues: v.errors.map((e) =>
        e.code === 'PILLION_ERR_POLICY_UNSUPPORTED_FIELD' && !e.path.endsWith('.key')
          ? { ...e, ...pick(issueAt(site, segments(e.path), e.code, e.message, e.hint, true)) }
          : e,
      ),
    };
  return { kind: kind as Kind | TrafficKind, value: v.value as never };
}

function pick(i: ConfigIssue): { line: number; col: number } {
  return { line: i.line, col: i.col };
}

/** `spec.rules[0].to` back into its segments. */
function segments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

function applies(
  matchLabels: Record<string, string> | undefined,
  ns: string | undefined,
  opts: IstioOptions,
): string | undefined {
  if (opts.namespace !== undefined && ns !== undefined && ns !== opts.namespace && ns !== opts.rootNamespace)
    return `namespace ${ns} is not this workload's (${opts.namespace})`;
  if (matchLabels === undefined) return undefined;
  for (const [k, v] of Object.entries(matchLabels)) {
    if (opts.workloadLabels[k] !== v)
      return `its selector wants ${k}=${v}; this workload's labels (policies.workloadLabels) do not have it`;
  }
  return undefined;
}

type At = (path: (string | number)[], message: string) => ConfigIssue;

function translateRequestAuthentication(
  r: RequestAuthenticationResource,
  at: At,
  issues: ConfigIssue[],
): Record<string, unknown>[] {
  return r.spec.jwtRules.flatMap((rule, i) => {
    if (rule.jwksUri === undefined && rule.jwks === undefined) {
      issues.push(
        at(
          ['spec', 'jwtRules', i],
          'a jwtRule needs jwksUri or jwks (Pillion does not discover keys from the issuer’s OpenID configuration)',
        ),
      );
      return [];
    }
    return [
      {
        issuer: rule.issuer,
        ...(rule.jwksUri !== undefined ? { jwksUri: rule.jwksUri } : {}),
        ...(rule.jwks !== undefined ? { jwks: rule.jwks } : {}),
        ...(rule.audiences ? { audiences: rule.audiences } : {}),
        ...(rule.fromHeaders
          ? { fromHeaders: rule.fromHeaders.map((h) => ({ name: h.name, prefix: h.prefix ?? '' })) }
          : {}),
        ...(rule.fromParams ? { fromParams: rule.fromParams } : {}),
        ...(rule.fromCookies ? { fromCookies: rule.fromCookies } : {}),
        ...(rule.forwardOriginalToken !== undefined
          ? { forwardOriginalToken: rule.forwardOriginalToken }
          : {}),
        ...(rule.outputClaimToHeaders ? { outputClaimToHeaders: rule.outputClaimToHeaders } : {}),
        ...(rule.timeout !== undefined ? { timeout: rule.timeout } : {}),
        // Istio accepts every asymmetric algorithm; so does Pillion's default.
      },
    ];
  });
}

function translateAuthorizationPolicy(
  r: AuthorizationPolicyResource,
  opts: IstioOptions,
  at: At,
  issues: ConfigIssue[],
): Record<string, unknown> | undefined {
  const s = r.spec;
  const name = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
  if (s.action === 'CUSTOM') {
    if (s.provider === undefined) {
      issues.push(at(['spec', 'action'], 'a CUSTOM policy names its provider (spec.provider.name)'));
      return undefined;
    }
    if (!opts.providers.includes(s.provider.name)) {
      issues.push(
        at(
          ['spec', 'provider', 'name'],
          `provider "${s.provider.name}" is not defined in pillion.yaml (inbound.authorization.providers; Istio keeps them in its mesh config)`,
        ),
      );
      return undefined;
    }
  } else if (s.provider !== undefined) {
    issues.push(at(['spec', 'provider'], 'only a CUSTOM policy has a provider'));
    return undefined;
  }
  return {
    name,
    action: s.action,
    ...(s.provider ? { provider: s.provider.name } : {}),
    dryRun: r.metadata.annotations?.['istio.io/dry-run'] === 'true',
    // Istio: an ALLOW policy without rules allows nothing; `rules: [{}]` allows everything.
    rules: s.rules ?? [],
  };
}

function translatePeerAuthentication(r: PeerAuthenticationResource): MtlsSetting | undefined {
  const mode = r.spec.mtls?.mode ?? 'UNSET';
  const portLevel: MtlsSetting['portLevel'] = {};
  for (const [port, m] of Object.entries(r.spec.portLevelMtls ?? {}))
    if (m.mode !== 'UNSET') portLevel[port] = { mode: m.mode };
  if (mode === 'UNSET' && Object.keys(portLevel).length === 0) return undefined;
  // UNSET inherits; with nothing above it Istio's default is PERMISSIVE.
  return { mode: mode === 'UNSET' ? 'PERMISSIVE' : mode, portLevel };
}

/** Where a pillion.yaml's policy files are resolved from. */
export function baseOf(configFile: string | undefined): string {
  return configFile === undefined ? process.cwd() : dirname(resolve(configFile));
}
