// What one file is made of, compiled once per config: a source's value written raw or re-encoded,
// or a Liquid template. Each knows the keys it reads (its dependencies), so a change of one key
// re-renders only the files that read it.

import { readFileSync } from 'node:fs';
import type { Liquid } from 'liquidjs';
import { stringify as toYaml } from 'yaml';
import { PillionError } from '../lib/errors.js';
import type { SetFileConfig } from './config.js';
import { ONLY } from './sources/source.js';
import {
  compileTemplate,
  type CompiledTemplate,
  type Dependency,
  EVERY_KEY,
  renderTemplate,
} from './template.js';

/** A source's current values, as the engine keeps them. */
export interface SourceValues {
  /** Whether the source holds one value (a file, a URL, one key) rather than named keys. */
  readonly single: boolean;
  values: ReadonlyMap<string, unknown>;
  /** The values as one object, built the first time a template needs them all; reset on change. */
  object?: Record<string, unknown> | undefined;
}

export type SourceTable = ReadonlyMap<string, SourceValues>;

export interface Content {
  readonly deps: readonly Dependency[];
  /** Renders; throws PILLION_ERR_SYNC_RENDER naming what is missing, never a value. */
  render(sources: SourceTable): Buffer;
}

/** Compiles what a file (or one file of a set) is made of. `where` names it in errors. */
export function compileContent(
  f: Pick<SetFileConfig, 'source' | 'key' | 'format' | 'template' | 'templateFile'>,
  where: string,
  liquid: Liquid,
  shapes: ReadonlyMap<string, { single: boolean }>,
): Content {
  if (f.source !== undefined) return sourceContent(f.source, f.key, f.format, where, shapes);
  let text = f.template;
  if (text === undefined) {
    try {
      text = readFileSync(f.templateFile!, 'utf8');
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_SYNC_RENDER',
        `${where}: cannot read templateFile ${f.templateFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const t: CompiledTemplate = compileTemplate(liquid, text, where, shapes);
  return {
    deps: t.deps,
    render: (sources) => Buffer.from(renderTemplate(liquid, t, globals(sources, t.deps), where)),
  };
}

function sourceContent(
  source: string,
  key: string | undefined,
  format: 'raw' | 'json' | 'yaml',
  where: string,
  shapes: ReadonlyMap<string, { single: boolean }>,
): Content {
  const single = shapes.get(source)?.single ?? false;
  const depKey = key ?? (single ? ONLY : EVERY_KEY);
  return {
    deps: [{ source, key: depKey }],
    render(sources) {
      const s = sources.get(source);
      let value: unknown;
      if (key !== undefined) {
        value = s?.values.get(key);
        if (value === undefined)
          throw new PillionError(
            'PILLION_ERR_SYNC_RENDER',
            `${where}: missing key "${key}" in source ${source}`,
          );
      } else if (single) {
        value = s?.values.get(ONLY);
        if (value === undefined)
          throw new PillionError('PILLION_ERR_SYNC_RENDER', `${where}: source ${source} has no value yet`);
      } else value = Object.fromEntries(s?.values ?? []);
      return Buffer.from(encode(value, format));
    },
  };
}

function encode(value: unknown, format: 'raw' | 'json' | 'yaml'): string {
  if (format === 'json') return `${JSON.stringify(value, null, 2)}\n`;
  if (format === 'yaml') return toYaml(value);
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * The template's variables: each source it reads, as its one value or an object of its keys. Only
 * the keys the template reads are copied (a source may hold thousands); a template that iterates
 * over a source gets all of them, built once per version of the source and shared.
 */
function globals(sources: SourceTable, deps: readonly Dependency[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const d of deps) {
    const s = sources.get(d.source);
    if (!s) continue;
    if (s.single) {
      const v = s.values.get(ONLY);
      if (v !== undefined) out[d.source] = v;
      continue;
    }
    if (d.key === EVERY_KEY) {
      s.object ??= Object.fromEntries(s.values);
      out[d.source] = s.object;
      continue;
    }
    const current = out[d.source];
    if (current === s.object && current !== undefined) continue; // has every key already
    const obj = (current as Record<string, unknown> | undefined) ?? {};
    const v = s.values.get(d.key);
    if (v !== undefined) obj[d.key] = v;
    out[d.source] = obj;
  }
  return out;
}
