// A destination's JSON Schema check: the rendered file, parsed as JSON (or YAML), must validate
// before it is written. Ajv is imported only when a destination has such a check. A failure names
// the JSON pointer and the schema's message, never the value (it may be a secret).

import { readFileSync } from 'node:fs';
import type { Ajv as AjvCore, ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { PillionError } from '../lib/errors.js';
import type { DestinationConfig } from './config.js';

/** Validates a rendered file; throws PILLION_ERR_SYNC_CHECK without the value. */
export type SchemaCheck = (data: Buffer, where: string) => void;

/** A problem with a schema, at the key that gives it (schema or schemaFile). */
export interface SchemaProblem {
  key: 'schema' | 'schemaFile';
  message: string;
}

type Dest = Pick<DestinationConfig, 'path' | 'format' | 'check'>;

/** Whether this destination's check has a schema (the only case in which Ajv is loaded). */
export function hasSchema(d: Dest): boolean {
  return d.check?.schema !== undefined || d.check?.schemaFile !== undefined;
}

/** Compiles the destination's schema, or says what is wrong with it. */
export async function compileSchemaCheck(d: Dest): Promise<SchemaCheck | SchemaProblem> {
  const key = d.check?.schema !== undefined ? 'schema' : 'schemaFile';
  let schema: unknown = d.check?.schema;
  if (key === 'schemaFile') {
    const file = d.check!.schemaFile!;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return {
        key,
        message:
          code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file} (${code ?? String(err)})`,
      };
    }
    try {
      schema = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
    } catch (err) {
      return {
        key,
        message: `${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`,
      };
    }
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
      return { key, message: `${file} does not hold a JSON Schema (an object)` };
  }
  const ajv = await newAjv((schema as { $schema?: unknown }).$schema);
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema as object);
  } catch (err) {
    return { key, message: `not a valid JSON Schema: ${(err as Error).message}` };
  }
  const yaml = d.format === 'yaml' || /\.ya?ml$/i.test(d.path ?? '');
  return (data, where) => {
    let value: unknown;
    try {
      value = yaml ? parseYaml(data.toString('utf8')) : JSON.parse(data.toString('utf8'));
    } catch {
      // The parser's message quotes the text; only the kind of failure is said.
      throw new PillionError(
        'PILLION_ERR_SYNC_CHECK',
        `schema check refused ${where}: the rendered file is not valid ${yaml ? 'YAML' : 'JSON'}`,
      );
    }
    if (validate(value)) return;
    const errors = (validate.errors ?? []).slice(0, 3).map((e) => {
      // Ajv's params can hold the value (`const`, `enum` of allowed values is the schema's own, fine);
      // the message is the schema's words, the pointer is where in the file.
      const pointer = e.instancePath === '' ? '/' : e.instancePath;
      return `${pointer} ${e.message ?? 'is invalid'}`;
    });
    throw new PillionError('PILLION_ERR_SYNC_CHECK', `schema check refused ${where}: ${errors.join('; ')}`);
  };
}

type AjvClass = new (opts: object) => AjvCore;

async function newAjv(dialect: unknown): Promise<AjvCore> {
  const d = typeof dialect === 'string' ? dialect : '';
  // Unknown keywords are errors (a typo would check nothing); Ajv's other strict rules refuse valid schemas.
  const opts = {
    allErrors: true,
    strictSchema: true,
    strictNumbers: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    logger: false,
  };
  const Ajv = cjsDefault<AjvClass>(
    d.includes('2020-12')
      ? await import('ajv/dist/2020.js')
      : d.includes('2019-09')
        ? await import('ajv/dist/2019.js')
        : await import('ajv'),
  );
  const ajv = new Ajv(opts);
  cjsDefault<(a: AjvCore) => void>(await import('ajv-formats'))(ajv);
  return ajv;
}

/** A CommonJS module's export: node gives module.exports as `default`, a bundler may give its `default`. */
function cjsDefault<T>(m: { default: unknown }): T {
  const d = m.default as { default?: unknown };
  return (typeof d.default === 'function' ? d.default : d) as T;
}

/** Every destination's compiled schema check; a schema that no longer compiles is its error. */
export async function compileSchemaChecks(
  destinations: Readonly<Record<string, Dest>>,
): Promise<Map<string, SchemaCheck | PillionError>> {
  const out = new Map<string, SchemaCheck | PillionError>();
  for (const [name, d] of Object.entries(destinations)) {
    if (!hasSchema(d)) continue;
    const r = await compileSchemaCheck(d);
    out.set(
      name,
      typeof r === 'function'
        ? r
        : new PillionError('PILLION_ERR_SYNC_CHECK', `destination ${name}: check.${r.key}: ${r.message}`),
    );
  }
  return out;
}
