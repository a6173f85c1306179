// Turns zod's validation issues into Pillion config issues: a stable code per kind of mistake,
// a message that says what was found, a hint (often "did you mean"), and a source position.

import type { Document, LineCounter } from 'yaml';
import type { z } from 'zod';
import { didYouMean } from '../lib/did-you-mean.js';
import type { ErrorCode } from '../lib/errors.js';
import { describeValue, type PillionIssueParams } from './fields.js';
import type { ConfigIssue } from './issue.js';
import { issueAt, type PathSegment } from './positions.js';

export interface IssueContext {
  file: string;
  doc: Document;
  lc: LineCounter;
  /** The data that was validated, to say what was found at a path. */
  data: unknown;
  schema: z.ZodType;
  planned?: PlannedLookup | undefined;
}

/**
 * For a key the schema does not know: what planned feature it belongs to ("metrics (scrape ...)"),
 * or undefined when it is simply unknown.
 */
export type PlannedLookup = (path: readonly PathSegment[]) => string | undefined;

/**
 * Keys as Envoy, Istio, Linkerd or Kong spell them, and what Pillion calls the same thing: a
 * newcomer's first guesses, answered with the right name rather than a list of keys.
 */
const OTHER_SPELLINGS: Readonly<Record<string, { pillion: string; hint: string }>> = {
  retryPolicy: {
    pillion: 'retries',
    hint: 'Pillion calls it "retries": { attempts, perTryTimeout, retryOn }',
  },
  split: {
    pillion: 'destinations',
    hint: 'Pillion calls it "destinations": a list of { upstream, subset, weight }',
  },
  weightedClusters: {
    pillion: 'destinations',
    hint: 'Pillion calls it "destinations": a list of { upstream, subset, weight }',
  },
  connectionPool: {
    pillion: 'pool',
    hint: 'Pillion calls it "pool": { maxConnections, maxPending, maxRequests, maxRequestsPerConnection, maxRetries }',
  },
  loadBalancing: { pillion: 'loadBalancer', hint: 'Pillion calls it "loadBalancer": { policy: ... }' },
  lbPolicy: { pillion: 'loadBalancer', hint: 'Pillion calls it "loadBalancer": { policy: ... }' },
  circuitBreaker: {
    pillion: 'pool',
    hint: 'Pillion breaks circuits with "pool" (limits past which requests get 503 UO) and "outlierDetection" (ejection of failing endpoints)',
  },
  circuitBreakers: {
    pillion: 'pool',
    hint: 'Pillion breaks circuits with "pool" (limits past which requests get 503 UO) and "outlierDetection" (ejection of failing endpoints)',
  },
};

/** The hint for a key other proxies spell so, where the schema at this path has Pillion's name for it. */
function otherSpelling(
  path: readonly PathSegment[],
  key: string,
  known: readonly string[],
): string | undefined {
  const o = Object.hasOwn(OTHER_SPELLINGS, key) ? OTHER_SPELLINGS[key] : undefined;
  if (o !== undefined && known.includes(o.pillion)) return o.hint;
  // Section-wide resilience: Pillion sets it per upstream (for every request to it) or per route.
  if (
    path.length === 1 &&
    path[0] === 'outbound' &&
    ['retries', 'timeout', 'circuitBreaker', 'outlierDetection', 'pool', 'loadBalancer'].includes(key)
  )
    return `set "${key === 'circuitBreaker' ? 'pool' : key}" on each upstream (outbound.upstreams.<name>), where it applies to every request to it, or on a route`;
  return undefined;
}

export function mapZodIssues(issues: readonly z.core.$ZodIssue[], ctx: IssueContext): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) mapOne(issue, [], ctx, out);
  return dropMisspelledMissing(out);
}

// `prot: 8080` where `port` is required is one mistake, not two: when an unknown key's
// suggestion is exactly the missing key beside it, keep only the unknown-key error.
function dropMisspelledMissing(issues: ConfigIssue[]): ConfigIssue[] {
  const suggested = new Set<string>();
  for (const i of issues) {
    const m =
      i.code === 'PILLION_ERR_CONFIG_UNKNOWN_KEY' ? /^did you mean "(.+)"\?$/.exec(i.hint ?? '') : null;
    if (m) suggested.add(`${i.path.slice(0, i.path.lastIndexOf('.') + 1)}${m[1]}`);
  }
  return issues.filter((i) => i.code !== 'PILLION_ERR_CONFIG_MISSING_KEY' || !suggested.has(i.path));
}

function mapOne(issue: z.core.$ZodIssue, prefix: PathSegment[], ctx: IssueContext, out: ConfigIssue[]): void {
  const path = [...prefix, ...(issue.path as PathSegment[])];
  const push = (code: ErrorCode, message: string, hint?: string, at: PathSegment[] = path, key = false) =>
    out.push(issueAt(ctx, at, code, message, hint, key));

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeys(ctx.schema, path);
      for (const key of issue.keys) {
        const at = [...path, key];
        const planned = ctx.planned?.(at);
        if (planned !== undefined) {
          // No version has it yet, so "upgrade" would send the user looking for nothing.
          const hint = 'remove it for now; the README says what works today and what is coming';
          if (path.length === 0)
            push(
              'PILLION_ERR_CONFIG_UNSUPPORTED_SECTION',
              `the ${key} section is planned but not built yet: ${planned}`,
              hint,
              at,
              true,
            );
          else
            push(
              'PILLION_ERR_CONFIG_NOT_BUILT_YET',
              `"${key}" is planned but not built yet: ${planned}`,
              hint,
              at,
              true,
            );
          continue;
        }
        const guess = didYouMean(key, known);
        const other = otherSpelling(path, key, known);
        const hint =
          other ??
          (guess ? `did you mean "${guess}"?` : known.length ? `known keys: ${known.join(', ')}` : undefined);
        push('PILLION_ERR_CONFIG_UNKNOWN_KEY', 'unknown key', hint, at, true);
      }
      return;
    }
    case 'invalid_type': {
      const found = valueAt(ctx.data, path);
      if (found.missing) {
        push(
          'PILLION_ERR_CONFIG_MISSING_KEY',
          `required key "${String(path.at(-1))}" is missing`,
          `add "${String(path.at(-1))}: <${issue.expected}>"`,
        );
      } else {
        // Say the kind of value found, never the value itself: it may be a secret.
        push(
          'PILLION_ERR_CONFIG_WRONG_TYPE',
          `expected ${article(issue.expected)}, got ${kindOf(found.value)}`,
          typeHint(issue.expected, found.value),
        );
      }
      return;
    }
    case 'too_small':
    case 'too_big': {
      const bound = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
      const cmp =
        issue.code === 'too_small'
          ? issue.inclusive === false
            ? 'greater than'
            : 'at least'
          : issue.inclusive === false
            ? 'less than'
            : 'at most';
      const what =
        issue.origin === 'string'
          ? ' characters long'
          : issue.origin === 'array' || issue.origin === 'set'
            ? ' items'
            : '';
      const found = valueAt(ctx.data, path);
      const shown = typeof found.value === 'number' ? `${found.value} is out of range: ` : '';
      push('PILLION_ERR_CONFIG_OUT_OF_RANGE', `${shown}must be ${cmp} ${bound}${what}`);
      return;
    }
    case 'not_multiple_of':
      push('PILLION_ERR_CONFIG_OUT_OF_RANGE', `must be a multiple of ${String(issue.divisor)}`);
      return;
    case 'invalid_value': {
      const found = valueAt(ctx.data, path).value;
      const allowed = issue.values.map((v) => JSON.stringify(v));
      const guess = typeof found === 'string' ? didYouMean(found, issue.values.map(String)) : undefined;
      push(
        'PILLION_ERR_CONFIG_BAD_ENUM',
        `${describeValue(found)} is not one of ${allowed.join(', ')}`,
        guess ? `did you mean "${guess}"?` : undefined,
      );
      return;
    }
    case 'invalid_union': {
      if ((issue as { note?: string }).note === 'No matching discriminator' || issue.errors.length === 0) {
        const found = valueAt(ctx.data, path).value;
        const options = (issue as { options?: unknown[] }).options?.map((o) => JSON.stringify(o)) ?? [];
        const guess =
          typeof found === 'string'
            ? didYouMean(
                found,
                options.map((o) => JSON.parse(o) as string),
              )
            : undefined;
        if (found === undefined) {
          push(
            'PILLION_ERR_CONFIG_MISSING_KEY',
            `required key "${String(path.at(-1))}" is missing`,
            options.length ? `one of ${options.join(', ')}` : undefined,
          );
        } else {
          push(
            'PILLION_ERR_CONFIG_BAD_ENUM',
            `${describeValue(found)} is not one of ${options.join(', ')}`,
            guess ? `did you mean "${guess}"?` : undefined,
          );
        }
        return;
      }
      // Report the alternative that came closest: the one with the fewest problems.
      const closest = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      for (const sub of closest) mapOne(sub, path, ctx, out);
      return;
    }
    case 'custom': {
      const params = issue.params as Partial<PillionIssueParams> | undefined;
      push(params?.pillionCode ?? 'PILLION_ERR_CONFIG_BAD_VALUE', issue.message, params?.hint);
      return;
    }
    case 'invalid_format': {
      // A schema's own message ("must be a lowercase RFC 1123 label") says more than zod's default.
      const custom = !issue.message.startsWith('Invalid');
      // Name patterns show what was written; other formats (base64 Secret data) may hold secrets.
      const found = valueAt(ctx.data, path).value;
      const shown = issue.format === 'regex' && typeof found === 'string' ? `${describeValue(found)}: ` : '';
      push(
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `${shown}${custom ? issue.message : `must be a valid ${issue.format}`}`,
        issue.format === 'regex' && 'pattern' in issue ? `pattern ${String(issue.pattern)}` : undefined,
      );
      return;
    }
    default:
      push('PILLION_ERR_CONFIG_BAD_VALUE', issue.message);
  }
}

function article(expected: string): string {
  if (expected === 'object') return 'a mapping';
  if (expected === 'array') return 'a list';
  if (expected === 'int') return 'an integer';
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return `a ${typeof value}`;
}

function typeHint(expected: string, found: unknown): string | undefined {
  if (expected === 'string' && (typeof found === 'number' || typeof found === 'boolean'))
    return 'quote the value to make it a string';
  if (expected === 'number' && typeof found === 'string' && /^\s*-?\d/.test(found))
    return 'remove the quotes to make it a number';
  if (expected === 'boolean' && typeof found === 'string') return 'write true or false, without quotes';
  if (expected === 'object' && found === null) return 'give the section at least one key, or remove it';
  return undefined;
}

function valueAt(data: unknown, path: readonly PathSegment[]): { missing: boolean; value: unknown } {
  let cur: unknown = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || !(String(seg) in (cur as object)))
      return { missing: true, value: undefined };
    cur = (cur as Record<string, unknown>)[String(seg)];
  }
  return { missing: false, value: cur };
}

type Def = { type: string; [k: string]: unknown };
const defOf = (s: unknown): Def => (s as { _zod: { def: Def } })._zod.def;

/** Keys the schema allows at path, for "did you mean". Follows objects, arrays, records and wrappers. */
export function knownKeys(schema: z.ZodType, path: readonly PathSegment[]): string[] {
  let nodes: unknown[] = [schema];
  for (const seg of path) {
    nodes = nodes.flatMap((n) => unwrap(n)).flatMap((n) => child(n, seg));
  }
  const keys = new Set<string>();
  for (const n of nodes.flatMap((x) => unwrap(x))) {
    const def = defOf(n);
    if (def.type === 'object') for (const k of Object.keys(def.shape as object)) keys.add(k);
  }
  return [...keys];
}

function unwrap(node: unknown): unknown[] {
  const def = defOf(node);
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
      return unwrap(def.innerType);
    case 'pipe':
      return [...unwrap(def.in), ...unwrap(def.out)];
    case 'lazy':
      return unwrap((def.getter as () => unknown)());
    case 'union':
      return (def.options as unknown[]).flatMap((o) => unwrap(o));
    default:
      return [node];
  }
}

function child(node: unknown, seg: PathSegment): unknown[] {
  const def = defOf(node);
  if (def.type === 'object') {
    const c = (def.shape as Record<string, unknown>)[String(seg)];
    return c ? [c] : [];
  }
  if (def.type === 'array') return [def.element];
  if (def.type === 'record') return [def.valueType];
  return [];
}
