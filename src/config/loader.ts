// Loads a YAML config: parse with positions, interpolate ${VAR}, validate against a zod schema,
// and report every problem at once as file:line:col with a stable code. Knows nothing about
// which sections exist; the caller passes the schema.

import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import type { z } from 'zod';
import type { ErrorCode } from '../lib/errors.js';
import { type Env, interpolate } from './interpolate.js';
import { type ConfigIssue, compareIssues } from './issue.js';
import { formatPath } from './positions.js';
import { mapZodIssues } from './zod-issues.js';

export interface LoadOptions<S extends z.ZodType> {
  schema: S;
  env: Env;
  /** Top-level keys kept for roles this build does not provide; reported as such, not as typos. */
  reservedSections?: Iterable<string>;
}

export type LoadResult<T> =
  | {
      ok: true;
      config: T;
      /** The data as written (after interpolation), before defaults and parsing: for display. */
      raw: Record<string, unknown>;
      text: string;
    }
  | { ok: false; issues: ConfigIssue[]; text?: string };

export function parseConfigText<S extends z.ZodType>(
  text: string,
  file: string,
  opts: LoadOptions<S>,
): LoadResult<z.output<S>> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, merge: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => yamlIssue(e, file, lc, text)).sort(compareIssues),
      text,
    };
  }

  const envIssues = interpolate(doc, lc, opts.env, file);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    const issue: ConfigIssue = {
      file,
      line: 1,
      col: 1,
      code: 'PILLION_ERR_CONFIG_YAML_SYNTAX',
      path: '(root)',
      message: (err as Error).message,
    };
    return { ok: false, issues: [issue], text };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    const issue: ConfigIssue = {
      file,
      line: 1,
      col: 1,
      code: 'PILLION_ERR_CONFIG_WRONG_TYPE',
      path: '(root)',
      message: 'the config must be a mapping of sections (admin:, app:, ...)',
    };
    return { ok: false, issues: [issue], text };
  }

  const parsed = opts.schema.safeParse(data);
  if (parsed.success && envIssues.length === 0) {
    return { ok: true, config: parsed.data, raw: data as Record<string, unknown>, text };
  }
  const badEnvPaths = new Set(envIssues.map((i) => i.path));
  const schemaIssues = parsed.success
    ? []
    : mapZodIssues(parsed.error.issues, {
        file,
        doc,
        lc,
        data,
        schema: opts.schema,
        reservedSections: new Set(opts.reservedSections ?? []),
      }).filter((i) => !badEnvPaths.has(i.path)); // an unresolved ${VAR} is reported once, as such
  return { ok: false, issues: dedupe([...envIssues, ...schemaIssues]).sort(compareIssues), text };
}

export async function loadConfigFile<S extends z.ZodType>(
  file: string,
  opts: LoadOptions<S>,
): Promise<LoadResult<z.output<S>>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT' ? 'file not found' : e.code === 'EISDIR' ? 'is a directory, not a file' : e.message;
    const issue: ConfigIssue = {
      file,
      line: 1,
      col: 1,
      code: 'PILLION_ERR_CONFIG_READ',
      path: '(root)',
      message: why,
    };
    return { ok: false, issues: [issue] };
  }
  return parseConfigText(text, file, opts);
}

function yamlIssue(e: YAMLError, file: string, lc: LineCounter, text: string): ConfigIssue {
  const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
  const code: ErrorCode =
    e.code === 'DUPLICATE_KEY' ? 'PILLION_ERR_CONFIG_DUPLICATE_KEY' : 'PILLION_ERR_CONFIG_YAML_SYNTAX';
  // yaml's messages end with a source excerpt after a colon and newline; keep the first line.
  const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  const hint =
    e.code === 'TAB_AS_INDENT'
      ? 'indent with spaces, not tabs'
      : e.code === 'MISSING_CHAR' && /quote/.test(message)
        ? `the quote opened at line ${lc.linePos(text.lastIndexOf(message.includes('"quote') ? '"' : "'", e.pos[0] - 1)).line} is not closed`
        : undefined;
  return { file, line: pos.line, col: pos.col, code, path: formatPath([]), message, hint };
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.line}:${i.col}:${i.code}:${i.path}:${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
