// The `redact` transform: replaces secrets and personal data in string values before any sink sees
// them, with every pattern folded into one RegExp so each string is scanned once.

import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { getField, setField } from './field.js';
import type { TransformChain } from './index.js';

type RedactConfig = Extract<TransformConfig, { type: 'redact' }>;

const CARD_GROUP = 'pillionCard';

// Every repetition is bounded or anchored by a look-behind, so a long line without a match costs
// linear time instead of a scan from every position (a 1 MiB base64 blob must not stall the chain).
// An e-mail address is matched from the start of its local part only, so one whose local part is
// longer than RFC 5321's 64 characters is not matched.
const BUILT_IN = new Map<string, string>(
  Object.entries({
    email: String.raw`(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,63}`,
    // Only the token goes: "Authorization: Bearer [REDACTED]" still says what was there.
    bearer: String.raw`(?<=\b[Bb][Ee][Aa][Rr][Ee][Rr][ \t]{1,16})[A-Za-z0-9\-._~+/]+=*`,
    jwt: String.raw`(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`,
    // Candidates only: the replacer keeps a run whose digits fail the Luhn check.
    'credit-card': String.raw`(?<${CARD_GROUP}>(?<!\d)\d(?:[ -]?\d){12,18}(?!\d))`,
    ipv4: String.raw`(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)`,
  }),
);

/** A user pattern that refers to its own groups by number or name cannot share a RegExp with others. */
const BACKREFERENCE = /\\(?:[1-9]|k<)/;

export function compileRedact(config: RedactConfig): TransformChain {
  const replacement = config.replacement;
  const combinedSources: string[] = [];
  const userSources: string[] = [];
  const alone: RegExp[] = [];
  for (const p of config.patterns) {
    const builtIn = BUILT_IN.get(p);
    if (builtIn !== undefined) combinedSources.push(builtIn);
    else if (BACKREFERENCE.test(p)) alone.push(new RegExp(p, 'g'));
    else userSources.push(p);
  }
  let combined: RegExp | undefined;
  try {
    combined = join([...combinedSources, ...userSources]);
  } catch {
    // User patterns that clash with each other (the same group name twice) each get a scan.
    combined = join(combinedSources);
    for (const p of userSources) alone.push(new RegExp(p, 'g'));
  }

  // An empty match (a user's `x*`) would insert the replacement between every two characters.
  const plain = (match: string): string => (match === '' ? match : replacement);
  const withCards = (match: string, ...rest: unknown[]): string => {
    const groups = rest[rest.length - 1] as Record<string, string | undefined>;
    if (groups[CARD_GROUP] !== undefined) return luhn(match) ? replacement : match;
    return match === '' ? match : replacement;
  };
  const replacer = config.patterns.includes('credit-card') ? withCards : plain;

  const redact = (text: string): string => {
    let out = combined === undefined ? text : text.replace(combined, replacer);
    for (let i = 0; i < alone.length; i++) out = out.replace(alone[i]!, plain);
    return out;
  };

  // Reused for every event: the walk is iterative so a deeply nested event cannot overflow the stack.
  const stack: (LogEvent | unknown[])[] = [];
  const walk = (root: LogEvent | unknown[]): void => {
    stack.push(root);
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (Array.isArray(node)) {
        for (let i = 0; i < node.length; i++) {
          const v: unknown = node[i];
          if (typeof v === 'string') {
            const r = redact(v);
            if (r !== v) node[i] = r;
          } else if (isContainer(v)) stack.push(v);
        }
      } else {
        for (const key in node) {
          const v = node[key];
          if (typeof v === 'string') {
            const r = redact(v);
            if (r !== v) setField(node, key, r);
          } else if (isContainer(v)) stack.push(v);
        }
      }
    }
  };

  const fields = config.fields;
  if (fields === undefined)
    return (events) => {
      for (let i = 0; i < events.length; i++) walk(events[i]!);
      return events;
    };
  return (events) => {
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      for (let j = 0; j < fields.length; j++) {
        const v = getField(event, fields[j]!);
        if (typeof v === 'string') {
          const r = redact(v);
          if (r !== v) setField(event, fields[j]!, r);
        } else if (isContainer(v)) walk(v);
      }
    }
    return events;
  };
}

function join(sources: string[]): RegExp | undefined {
  if (sources.length === 0) return undefined;
  return new RegExp(sources.map((s) => `(?:${s})`).join('|'), 'g');
}

/** Arrays and plain objects (what JSON makes); class instances such as Buffers are left alone. */
function isContainer(v: unknown): v is LogEvent | unknown[] {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return true;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The Luhn checksum over the digits of a candidate (spaces and dashes skipped). */
function luhn(candidate: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = candidate.length - 1; i >= 0; i--) {
    const c = candidate.charCodeAt(i) - 48;
    if (c < 0 || c > 9) continue;
    let d = c;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}
