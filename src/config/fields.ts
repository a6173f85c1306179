// Field builders every section's config.ts uses, so durations, sizes, addresses and secrets are
// parsed, documented and reported the same way everywhere. Each carries the Pillion error code
// its failures are reported under, and a JSON Schema shape for editors.

import { z } from 'zod';
import { type Address, parseAddress } from '../lib/address.js';
import { type ParseResult, parseDuration } from '../lib/duration.js';
import type { ErrorCode } from '../lib/errors.js';
import { parseSize } from '../lib/size.js';

/** Parameters a custom issue carries so the issue mapper can report it under its own code. */
export interface PillionIssueParams {
  pillionCode: ErrorCode;
  hint?: string;
}

type Ctx = z.RefinementCtx;

export function addPillionIssue(
  ctx: Ctx,
  code: ErrorCode,
  message: string,
  hint?: string,
  path?: PropertyKey[],
) {
  const params: PillionIssueParams = hint ? { pillionCode: code, hint } : { pillionCode: code };
  ctx.addIssue({ code: 'custom', message, params, ...(path ? { path } : {}) });
}

const DURATION_PATTERN = '^(\\d+(\\.\\d+)?(h|m|s|ms))+$';
const SIZE_PATTERN = '^\\d+(\\.\\d+)? ?([KMGT]i?B|B)$';
const ADDRESS_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):\\d{1,5}$';

interface UnitKind {
  noun: string;
  example: string;
  parse: (text: string) => ParseResult<number>;
  code: ErrorCode;
  hint: string;
  zero: string;
  format: 'duration' | 'size';
  pattern: string;
}

const DURATION: UnitKind = {
  noun: 'duration',
  example: '2s',
  parse: parseDuration,
  code: 'PILLION_ERR_CONFIG_BAD_DURATION',
  hint: 'durations look like "250ms", "2s", "1m" or "1m30s"',
  zero: '0s',
  format: 'duration',
  pattern: DURATION_PATTERN,
};

const SIZE: UnitKind = {
  noun: 'size',
  example: '64KiB',
  parse: parseSize,
  code: 'PILLION_ERR_CONFIG_BAD_SIZE',
  hint: 'sizes look like "512B", "64KiB", "10MB" or "1GiB"',
  zero: '0B',
  format: 'size',
  pattern: SIZE_PATTERN,
};

/** A duration written "250ms", "2s", "1m30s"; parsed to milliseconds. */
export function duration(opts: { min?: string; max?: string } = {}) {
  return unitField(DURATION, opts);
}

/** A byte size written "64KiB", "10MB"; parsed to bytes. */
export function size(opts: { min?: string; max?: string } = {}) {
  return unitField(SIZE, opts);
}

// Durations and sizes are both "a number with a unit, within bounds"; one builder serves both.
function unitField(kind: UnitKind, opts: { min?: string; max?: string }) {
  const min = opts.min ? mustParse(kind.parse, opts.min) : undefined;
  const max = opts.max ? mustParse(kind.parse, opts.max) : undefined;
  return z
    .unknown()
    .transform((input, ctx): number => {
      if (typeof input !== 'string' && typeof input !== 'number') {
        const message = `expected a ${kind.noun}, got ${describeValue(input)}`;
        addPillionIssue(ctx, 'PILLION_ERR_CONFIG_WRONG_TYPE', message, `write it like "${kind.example}"`);
        return z.NEVER;
      }
      const r = kind.parse(String(input));
      if (!r.ok) {
        addPillionIssue(ctx, kind.code, r.reason, kind.hint);
        return z.NEVER;
      }
      if ((min !== undefined && r.value < min) || (max !== undefined && r.value > max)) {
        const message = `${input} is outside ${opts.min ?? kind.zero}..${opts.max ?? '∞'}`;
        addPillionIssue(ctx, 'PILLION_ERR_CONFIG_OUT_OF_RANGE', message);
        return z.NEVER;
      }
      return r.value;
    })
    .meta({ type: 'string', pattern: kind.pattern, format: kind.format });
}

/** A host:port address; parsed to { host, port }. */
export function address() {
  return z
    .unknown()
    .transform((input, ctx): Address => {
      if (typeof input !== 'string') {
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_ADDRESS',
          `expected "host:port", got ${describeValue(input)}`,
          typeof input === 'number'
            ? `write ":${input}" for every interface or "127.0.0.1:${input}" for loopback`
            : undefined,
        );
        return z.NEVER;
      }
      const r = parseAddress(input);
      if (!r.ok) {
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_ADDRESS',
          r.reason,
          'addresses look like "127.0.0.1:8080", ":8080" or "[::1]:8080"',
        );
        return z.NEVER;
      }
      return r.value;
    })
    .meta({ type: 'string', pattern: ADDRESS_PATTERN, format: 'address' });
}

/** A TCP port number. */
export function port() {
  return z.number().int().min(1).max(65535);
}

/** A string that is redacted in /config, logs and errors. */
export function secret() {
  return z.string().meta({ 'x-pillion-secret': true });
}

const COMPONENT_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/**
 * The name of a role's component (a log source or sink, a sync source, a scrape target, a push):
 * lowercase letters, digits, "_" and "-", starting with a letter. `what` names it in the error.
 */
export function componentName(what = 'name') {
  return z.string().superRefine((v, ctx) => {
    if (!COMPONENT_NAME.test(v))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `"${v}" is not a valid ${what}`,
        'names are lowercase letters, digits, "_" and "-", starting with a letter',
      );
  });
}

/** An HTTP path: absolute, printable ASCII (percent-encode the rest), no query or fragment. */
export function httpPath() {
  return z.string().superRefine((value, ctx) => {
    if (!/^\/[\x21-\x7e]*$/.test(value) || /[?#]/.test(value)) {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `"${value}" is not an absolute path of printable ASCII`,
        'paths start with "/", percent-encode other characters, and hold no query, fragment or spaces',
      );
    }
  });
}

/** A JavaScript regular expression, checked to compile. */
export function regex() {
  return z.string().superRefine((v, ctx) => {
    try {
      new RegExp(v);
    } catch (err) {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`,
      );
    }
  });
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return `the string "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return `${typeof value} ${String(value)}`;
}

function mustParse(parse: (s: string) => ParseResult<number>, text: string): number {
  const r = parse(text);
  if (!r.ok) throw new Error(`invalid bound in schema: ${r.reason}`);
  return r.value;
}
