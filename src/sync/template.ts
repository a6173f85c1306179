// Templates: LiquidJS, sandboxed. A template cannot read a file (include, render and layout find
// nothing: the engine has no file system), cannot call code (data is plain JSON, and only own
// properties are read, so no constructor or prototype is reachable), and is bounded in parse size,
// render time and memory. A variable that is not there is an error, unless the template gives a
// `default`; the error names the variable and the line, never a value.
// Each template's dependencies come from static analysis: the keys of each source it reads, or the
// whole source when it reads one by a computed key or iterates over it.

import { Liquid, type Template } from 'liquidjs';
import { stringify as toYaml } from 'yaml';
import { PillionError } from '../lib/errors.js';

/** A source's key a template reads; `*` for every key (iteration, a computed key, the whole source). */
export type Dependency = { source: string; key: string };
export const EVERY_KEY = '*';
const LIQUID_SPECIAL = new Set(['size', 'first', 'last']);

const NO_FILES = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async (file: string) => {
    throw new Error(`templates cannot read files (${file})`);
  },
  readFileSync: (file: string) => {
    throw new Error(`templates cannot read files (${file})`);
  },
  resolve: (_root: string, file: string) => file,
  contains: async () => false,
  dirname: () => '.',
  sep: '/',
};

/** The filters pillion adds to Liquid's own (which has `default`, `json`, `escape`, ...). */
export function createLiquid(env: Readonly<Record<string, string | undefined>>): Liquid {
  const liquid = new Liquid({
    strictVariables: true,
    // `default` and `if` may look at a missing variable: that is how a template gives a default.
    lenientIf: true,
    ownPropertyOnly: true,
    strictFilters: true,
    fs: NO_FILES,
    relativeReference: false,
    // An include or render of anything finds nothing.
    templates: {},
    parseLimit: 1024 * 1024,
    renderLimit: 2000,
    memoryLimit: 64 * 1024 * 1024,
    // Dates are formatted in en-US unless a template says otherwise; naming it spares the Intl
    // lookup of the system's locale, about 20 ms of every start that renders a template.
    locale: 'en-US',
  });
  liquid.registerFilter('yaml', (v: unknown) => toYaml(v).trimEnd());
  liquid.registerFilter('base64', (v: unknown) => Buffer.from(String(v ?? '')).toString('base64'));
  liquid.registerFilter('base64_decode', (v: unknown) =>
    Buffer.from(String(v ?? ''), 'base64').toString('utf8'),
  );
  liquid.registerFilter('env', (name: unknown) => env[String(name)]);
  liquid.registerFilter('required', (v: unknown, what?: unknown) => {
    if (v === undefined || v === null || v === '')
      throw new Error(`required value is missing${what !== undefined ? `: ${String(what)}` : ''}`);
    return v;
  });
  return liquid;
}

export interface CompiledTemplate {
  templates: Template[];
  deps: Dependency[];
}

/**
 * Parses a template; `sources` tells which top-level names are sources and which of them hold a
 * single value. Throws PILLION_ERR_SYNC_RENDER with the line of a syntax error.
 */
export function compileTemplate(
  liquid: Liquid,
  text: string,
  where: string,
  sources: ReadonlyMap<string, { single: boolean }>,
): CompiledTemplate {
  let templates: Template[];
  try {
    templates = liquid.parse(text);
  } catch (err) {
    throw new PillionError('PILLION_ERR_SYNC_RENDER', `${where}: ${describeLiquidError(err)}`);
  }
  const deps: Dependency[] = [];
  const seen = new Set<string>();
  let segments: ReturnType<Liquid['globalVariableSegmentsSync']>;
  try {
    segments = liquid.globalVariableSegmentsSync(templates);
  } catch (err) {
    // The analysis follows include and render: the sandbox's file system finds nothing.
    throw new PillionError('PILLION_ERR_SYNC_RENDER', `${where}: ${describeLiquidError(err)}`);
  }
  for (const seg of segments) {
    const root = seg[0];
    if (typeof root !== 'string') continue;
    const s = sources.get(root);
    if (!s) continue;
    const next = seg[1];
    // Liquid's `size`, `first` and `last` of an object are about all its keys.
    const key = s.single
      ? ''
      : typeof next === 'string' && !LIQUID_SPECIAL.has(next)
        ? next
        : typeof next === 'number'
          ? String(next)
          : EVERY_KEY;
    const id = `${root}\0${key}`;
    if (seen.has(id)) continue;
    seen.add(id);
    deps.push({ source: root, key });
  }
  return { templates, deps };
}

/** Renders with the sources' values as globals. Throws PILLION_ERR_SYNC_RENDER (no value in it). */
export function renderTemplate(
  liquid: Liquid,
  t: CompiledTemplate,
  globals: Record<string, unknown>,
  where: string,
): string {
  try {
    return liquid.renderSync(t.templates, globals) as string;
  } catch (err) {
    throw new PillionError('PILLION_ERR_SYNC_RENDER', `${where}: ${describeLiquidError(err)}`);
  }
}

/**
 * What went wrong and where, without any value: Liquid's messages for undefined variables, syntax
 * and our own `required` name the variable or the template text; others keep only their kind.
 */
export function describeLiquidError(err: unknown): string {
  const e = err as Error & { originalError?: Error };
  const msg = e.message ?? String(err);
  const at = /line:(\d+), col:(\d+)/.exec(msg);
  const where = at ? ` (line ${at[1]}, col ${at[2]})` : '';
  const first = msg
    .split('\n')[0]!
    .replace(/,? ?line:\d+, col:\d+/, '')
    .trim();
  if (e.name === 'UndefinedVariableError')
    return `${first.replace(/^undefined variable/, 'missing key')}${where}; give it a default (| default: ...) or add it to the source`;
  if (e.name === 'ParseError' || e.name === 'TokenizationError' || e.name === 'AssertionError')
    return `template syntax: ${first}${where}`;
  if (/^required value is missing/.test(first)) return `${first}${where}`;
  if (/templates cannot read files|Failed to lookup/.test(first))
    return `templates cannot include, render or read files${where}`;
  if (/limit exceeded/i.test(first)) return `${first}${where}`;
  return `${e.name ?? 'Error'} while rendering${where}`;
}
