// The effective config as a person reads it: what the file says, with every default filled in
// and every secret replaced by "[redacted]". Served by the admin /config endpoint. Secrets are
// fields marked x-pillion-secret in the schema, and, as a second guard, keys named like secrets.

import type { JsonSchema } from './json-schema.js';

export const REDACTED = '[redacted]';
const SECRET_KEY =
  /(pass(word|phrase|wd)?|secret|token|api[-_]?keys?|private[-_]?key|access[-_]?key|credential|authorization|cookie)/i;

/** Whether a key's name says its value is a secret (the second guard behind schema marks). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function effectiveView(schema: JsonSchema, value: unknown, key = ''): unknown {
  const v = value === undefined && schema.default !== undefined ? structuredClone(schema.default) : value;
  if (v === undefined) return undefined;
  if (schema['x-pillion-secret'] || (isSecretKey(key) && (typeof v === 'string' || typeof v === 'number'))) {
    return REDACTED;
  }
  const variant = pickVariant(schema, v);
  if (variant !== schema) return effectiveView(variant, v, key);

  // Items of a list inherit its key: every entry of `apiKeys: [...]` is a secret.
  if (Array.isArray(v)) return v.map((item) => effectiveView(schema.items ?? {}, item, key));
  if (typeof v === 'object' && v !== null) {
    const obj = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    const props = schema.properties ?? {};
    const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : {};
    for (const k of new Set([...Object.keys(props), ...Object.keys(obj)])) {
      const child = effectiveView(props[k] ?? extra, obj[k], k);
      if (child !== undefined) out[k] = child;
    }
    return out;
  }
  return v;
}

function pickVariant(schema: JsonSchema, value: unknown): JsonSchema {
  const variants = schema.oneOf ?? schema.anyOf;
  if (!variants) return schema;
  const keys = typeof value === 'object' && value !== null ? Object.keys(value) : [];
  return (
    variants.find((s) => {
      if (typeof value !== 'object' || value === null) return s.type !== 'object';
      const props = s.properties ?? {};
      const discriminated = Object.entries(props).every(
        ([k, p]) => p.const === undefined || (value as Record<string, unknown>)[k] === p.const,
      );
      return discriminated && keys.every((k) => k in props);
    }) ?? variants[0]!
  );
}
