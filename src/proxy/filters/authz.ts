// Authorization with Istio's AuthorizationPolicy semantics, compiled at config load: CUSTOM
// policies first (an ext_authz check), then DENY, then ALLOW; once any ALLOW policy applies, a
// request that matches none is refused with 403 `RBAC: access denied`. AUDIT policies only log.
// Dry-run policies are evaluated, counted and logged, and never decide. Paths are matched in the
// proxy's normalized form, the one that is forwarded.

import net from 'node:net';
import type { Logger } from 'pino';
import type { LogLimiter } from '../../lib/log-limiter.js';
import type { Series } from '../../metrics/index.js';
import {
  type AuthorizationConfig,
  type PolicyConfig,
  parseWhenKey,
  type RuleConfig,
  type WhenKey,
} from './config.js';
import type { ExtAuthzClient } from './ext-authz.js';
import type { FilterStats } from './stats.js';
import { type Denial, type FilterRequest, headerOf, type RequestFilter, type Verdict } from './types.js';

/** Istio's four string forms: exact, `prefix*`, `*suffix`, `*`. */
class Values {
  readonly any: boolean;
  readonly exact: Set<string>;
  readonly prefixes: string[];
  readonly suffixes: string[];
  constructor(values: readonly string[], lower = false) {
    const norm = (v: string) => (lower ? v.toLowerCase() : v);
    this.any = values.includes('*');
    this.exact = new Set(values.filter((v) => !v.startsWith('*') && !v.endsWith('*')).map(norm));
    this.prefixes = values.filter((v) => v.length > 1 && v.endsWith('*')).map((v) => norm(v.slice(0, -1)));
    this.suffixes = values
      .filter((v) => v.length > 1 && v.startsWith('*') && !v.endsWith('*'))
      .map((v) => norm(v.slice(1)));
  }
  test(v: string | undefined): boolean {
    if (v === undefined) return false;
    if (this.any) return true;
    if (this.exact.has(v)) return true;
    for (const p of this.prefixes) if (v.startsWith(p)) return true;
    for (const s of this.suffixes) if (v.endsWith(s)) return true;
    return false;
  }
}

function blocks(list: readonly string[]): net.BlockList {
  const b = new net.BlockList();
  for (const v of list) {
    const [ip, bits] = v.split('/');
    const type = net.isIP(ip!) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) b.addAddress(ip!, type);
    else b.addSubnet(ip!, Number(bits), type);
  }
  return b;
}

function inBlocks(b: net.BlockList, ip: string): boolean {
  const t = net.isIP(ip);
  return t !== 0 && b.check(ip, t === 6 ? 'ipv6' : 'ipv4');
}

/** One compiled field condition: positive or negative over one request attribute. */
interface Cond {
  test(req: FilterRequest): boolean;
}

function valuesCond(
  get: (req: FilterRequest) => string | string[] | undefined,
  values: Values,
  negate: boolean,
): Cond {
  return {
    test(req) {
      const v = get(req);
      const hit = Array.isArray(v) ? v.some((x) => values.test(x)) : values.test(v);
      return negate ? !hit : hit;
    },
  };
}

function blockCond(get: (req: FilterRequest) => string, b: net.BlockList, negate: boolean): Cond {
  return { test: (req) => inBlocks(b, get(req)) !== negate };
}

const sourceIp = (r: FilterRequest) => r.clientIp;
const remoteIp = (r: FilterRequest) => {
  if (!r.trustForwarded) return r.clientIp;
  const xff = headerOf(r, 'x-forwarded-for');
  if (xff === undefined) return r.clientIp;
  const first = xff.split(',')[0]!.trim();
  return net.isIP(first) !== 0 ? first : r.clientIp;
};

export function namespaceOf(principal: string | undefined): string | undefined {
  if (principal === undefined) return undefined;
  const m = /\/ns\/([^/]+)\//.exec(principal);
  return m ? m[1] : undefined;
}

function hostOf(r: FilterRequest): string {
  return r.host.toLowerCase();
}

function claimAt(
  claims: Record<string, unknown> | undefined,
  path: readonly string[],
): string | string[] | undefined {
  let v: unknown = claims;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return undefined;
}

function getter(k: WhenKey): (r: FilterRequest) => string | string[] | undefined {
  switch (k.kind) {
    case 'header':
      return (r) => headerOf(r, k.name);
    case 'claim':
      return (r) => claimAt(r.claims, k.path);
    case 'source.principal':
      return (r) => r.peerPrincipal;
    case 'source.namespace':
      return (r) => namespaceOf(r.peerPrincipal);
    case 'request.auth.principal':
      return (r) => r.requestPrincipal;
    case 'request.auth.audiences':
      return (r) => claimAt(r.claims, ['aud']);
    case 'request.auth.presenter':
      return (r) => claimAt(r.claims, ['azp']);
    case 'destination.port':
      return (r) => String(r.port);
    case 'connection.sni':
      return (r) => (r.sni === '' ? undefined : r.sni);
    default:
      return () => undefined;
  }
}

type Source = NonNullable<RuleConfig['from']>[number]['source'];
type Operation = NonNullable<RuleConfig['to']>[number]['operation'];

function sourceConds(s: Source): Cond[] {
  const c: Cond[] = [];
  if (s.principals) c.push(valuesCond((r) => r.peerPrincipal, new Values(s.principals), false));
  if (s.notPrincipals) c.push(valuesCond((r) => r.peerPrincipal, new Values(s.notPrincipals), true));
  if (s.requestPrincipals)
    c.push(valuesCond((r) => r.requestPrincipal, new Values(s.requestPrincipals), false));
  if (s.notRequestPrincipals)
    c.push(valuesCond((r) => r.requestPrincipal, new Values(s.notRequestPrincipals), true));
  if (s.namespaces) c.push(valuesCond((r) => namespaceOf(r.peerPrincipal), new Values(s.namespaces), false));
  if (s.notNamespaces)
    c.push(valuesCond((r) => namespaceOf(r.peerPrincipal), new Values(s.notNamespaces), true));
  if (s.ipBlocks) c.push(blockCond(sourceIp, blocks(s.ipBlocks), false));
  if (s.notIpBlocks) c.push(blockCond(sourceIp, blocks(s.notIpBlocks), true));
  if (s.remoteIpBlocks) c.push(blockCond(remoteIp, blocks(s.remoteIpBlocks), false));
  if (s.notRemoteIpBlocks) c.push(blockCond(remoteIp, blocks(s.notRemoteIpBlocks), true));
  return c;
}

function operationConds(o: Operation): Cond[] {
  const c: Cond[] = [];
  if (o.hosts) c.push(valuesCond(hostOf, new Values(o.hosts, true), false));
  if (o.notHosts) c.push(valuesCond(hostOf, new Values(o.notHosts, true), true));
  if (o.ports) c.push(valuesCond((r) => String(r.port), new Values(o.ports), false));
  if (o.notPorts) c.push(valuesCond((r) => String(r.port), new Values(o.notPorts), true));
  if (o.methods) c.push(valuesCond((r) => r.method, new Values(o.methods), false));
  if (o.notMethods) c.push(valuesCond((r) => r.method, new Values(o.notMethods), true));
  if (o.paths) c.push(valuesCond((r) => r.path, new Values(o.paths), false));
  if (o.notPaths) c.push(valuesCond((r) => r.path, new Values(o.notPaths), true));
  return c;
}

function whenConds(rule: RuleConfig): Cond[] {
  const out: Cond[] = [];
  for (const w of rule.when ?? []) {
    const key = parseWhenKey(w.key) as WhenKey;
    if (key.kind === 'source.ip' || key.kind === 'remote.ip') {
      const get = key.kind === 'source.ip' ? sourceIp : remoteIp;
      if (w.values) out.push(blockCond(get, blocks(w.values), false));
      if (w.notValues) out.push(blockCond(get, blocks(w.notValues), true));
    } else {
      const get = getter(key);
      if (w.values) out.push(valuesCond(get, new Values(w.values), false));
      if (w.notValues) out.push(valuesCond(get, new Values(w.notValues), true));
    }
  }
  return out;
}

interface CompiledRule {
  from: Cond[][] | undefined;
  to: Cond[][] | undefined;
  when: Cond[];
  series: Series;
  dryRunSeries: Series;
}

interface CompiledPolicy {
  name: string;
  action: PolicyConfig['action'];
  dryRun: boolean;
  provider: ExtAuthzClient | undefined;
  rules: CompiledRule[];
  noMatch: Series;
}

const all = (conds: Cond[], r: FilterRequest) => {
  for (let i = 0; i < conds.length; i++) if (!conds[i]!.test(r)) return false;
  return true;
};
const anyAlt = (alts: Cond[][] | undefined, r: FilterRequest) => {
  if (alts === undefined) return true;
  for (let i = 0; i < alts.length; i++) if (all(alts[i]!, r)) return true;
  return false;
};

/** The index of the first rule of the policy that matches, or -1. */
function matchPolicy(p: CompiledPolicy, r: FilterRequest): number {
  for (let i = 0; i < p.rules.length; i++) {
    const rule = p.rules[i]!;
    if (anyAlt(rule.from, r) && anyAlt(rule.to, r) && all(rule.when, r)) return i;
  }
  return -1;
}

const DENIED: Denial = { status: 403, body: 'RBAC: access denied\n', headers: [], flag: '' };

export class AuthzFilter implements RequestFilter {
  readonly #custom: CompiledPolicy[];
  readonly #deny: CompiledPolicy[];
  readonly #audit: CompiledPolicy[];
  readonly #allow: CompiledPolicy[];
  /** Whether any enforced ALLOW policy applies: then a request must match one. */
  readonly #allowApplies: boolean;
  readonly #noAllowMatch: Series;
  readonly #logger: Logger;
  readonly #limiter: LogLimiter;
  readonly #listener: string;
  readonly #stats: FilterStats;

  constructor(
    cfg: AuthorizationConfig,
    providers: Map<string, ExtAuthzClient>,
    deps: { logger: Logger; limiter: LogLimiter; stats: FilterStats; listener: string },
  ) {
    this.#logger = deps.logger;
    this.#limiter = deps.limiter;
    this.#listener = deps.listener;
    this.#stats = deps.stats;
    const compiled = cfg.policies.map((p) => compilePolicy(p, providers, deps.stats, deps.listener));
    this.#custom = compiled.filter((p) => p.action === 'CUSTOM');
    this.#deny = compiled.filter((p) => p.action === 'DENY');
    this.#audit = compiled.filter((p) => p.action === 'AUDIT');
    this.#allow = compiled.filter((p) => p.action === 'ALLOW');
    this.#allowApplies = this.#allow.some((p) => !p.dryRun);
    this.#noAllowMatch = deps.stats.authz.with({
      listener: deps.listener,
      policy: '-',
      action: 'ALLOW',
      rule: '-',
      decision: 'deny',
    });
  }

  run(req: FilterRequest): Verdict | Promise<Verdict> {
    for (let i = 0; i < this.#custom.length; i++) {
      const p = this.#custom[i]!;
      const rule = matchPolicy(p, req);
      if (rule === -1) continue;
      if (p.dryRun) {
        p.rules[rule]!.dryRunSeries.value++;
        this.#log(req, p, rule, 'would be checked by ext_authz (dry run)');
        continue;
      }
      return this.#custom_(req, p, rule);
    }
    return this.#local(req);
  }

  async #custom_(req: FilterRequest, p: CompiledPolicy, rule: number): Promise<Verdict> {
    const r = await p.provider!.check(req);
    if (!r.allow) {
      this.#stats.authz.with({
        listener: this.#listener,
        policy: p.name,
        action: 'CUSTOM',
        rule: String(rule),
        decision: r.error !== undefined ? 'error' : 'deny',
      }).value++;
      req.details = `ext_authz_denied{${p.name}${r.error !== undefined ? `: ${r.error}` : ''}}`;
      this.#log(req, p, rule, r.error !== undefined ? `ext_authz failed: ${r.error}` : 'denied by ext_authz');
      return r.denial;
    }
    p.rules[rule]!.series.value++;
    for (const h of r.headers) {
      req.dropHeaders.push(h[0]);
      req.addHeaders.push(h);
    }
    return this.#local(req);
  }

  #local(req: FilterRequest): Verdict {
    for (let i = 0; i < this.#deny.length; i++) {
      const p = this.#deny[i]!;
      const rule = matchPolicy(p, req);
      if (rule === -1) continue;
      if (p.dryRun) {
        p.rules[rule]!.dryRunSeries.value++;
        this.#log(req, p, rule, 'would be denied (dry run)');
        continue;
      }
      p.rules[rule]!.series.value++;
      req.details = `rbac_access_denied_matched_policy[${p.name}]`;
      this.#log(req, p, rule, 'denied');
      return DENIED;
    }
    for (let i = 0; i < this.#audit.length; i++) {
      const p = this.#audit[i]!;
      const rule = matchPolicy(p, req);
      if (rule === -1) continue;
      p.rules[rule]!.series.value++;
      this.#log(req, p, rule, 'audited');
    }
    if (this.#allow.length === 0) return undefined;
    let allowed = false;
    for (let i = 0; i < this.#allow.length; i++) {
      const p = this.#allow[i]!;
      const rule = matchPolicy(p, req);
      if (p.dryRun) {
        if (rule === -1) {
          p.noMatch.value++;
          this.#log(req, p, rule, 'would be denied: no rule allows it (dry run)');
        } else p.rules[rule]!.dryRunSeries.value++;
        continue;
      }
      if (rule !== -1 && !allowed) {
        p.rules[rule]!.series.value++;
        allowed = true;
      }
    }
    if (allowed || !this.#allowApplies) return undefined;
    this.#noAllowMatch.value++;
    req.details = 'rbac_access_denied_matched_policy[none]';
    this.#log(req, undefined, -1, 'denied: no ALLOW policy matches');
    return DENIED;
  }

  #log(req: FilterRequest, p: CompiledPolicy | undefined, rule: number, what: string): void {
    const name = p?.name ?? '-';
    const skipped = this.#limiter.admit(`authz:${name}:${rule}:${what}`);
    if (skipped < 0) return;
    this.#logger.info(
      {
        listener: this.#listener,
        policy: name,
        ...(p ? { action: p.action } : {}),
        rule: rule === -1 ? null : rule,
        method: req.method,
        path: req.path,
        client: req.clientIp,
        ...(req.peerPrincipal ? { principal: req.peerPrincipal } : {}),
        ...(req.requestPrincipal ? { requestPrincipal: req.requestPrincipal } : {}),
        ...(skipped > 0 ? { suppressed: skipped } : {}),
      },
      `authorization: ${what}`,
    );
  }
}

function compilePolicy(
  p: PolicyConfig,
  providers: Map<string, ExtAuthzClient>,
  stats: FilterStats,
  listener: string,
): CompiledPolicy {
  const labels = (rule: string, decision: string) =>
    stats.authz.with({ listener, policy: p.name, action: p.action, rule, decision });
  const decision = p.action === 'DENY' ? 'deny' : p.action === 'AUDIT' ? 'audit' : 'allow';
  return {
    name: p.name,
    action: p.action,
    dryRun: p.dryRun,
    provider: p.provider !== undefined ? providers.get(p.provider) : undefined,
    rules: p.rules.map((r, i) => ({
      ...compileRuleParts(r),
      series: labels(String(i), p.action === 'CUSTOM' ? 'checked' : decision),
      dryRunSeries: labels(
        String(i),
        p.action === 'DENY' || p.action === 'CUSTOM' ? 'dry_run_deny' : 'dry_run_' + decision,
      ),
    })),
    noMatch: labels('-', 'dry_run_deny'),
  };
}

function compileRuleParts(rule: RuleConfig): Pick<CompiledRule, 'from' | 'to' | 'when'> {
  return {
    from: rule.from?.map(({ source }) => sourceConds(source)),
    to: rule.to?.map(({ operation }) => operationConds(operation)),
    when: whenConds(rule),
  };
}
