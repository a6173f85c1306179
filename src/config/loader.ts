// Loads YAML config: parse with positions, interpolate ${VAR}, validate against a zod schema,
// and report every problem at once as file:line:col with a stable code. Knows nothing about
// which sections exist; the caller passes the schema. validateDocument() is the shared core, also
// used for multi-document files (pod manifests), where unknown keys may be warnings instead.

import { open } from 'node:fs/promises';
import {
  type Document,
  isMap,
  isScalar,
  LineCounter,
  parseAllDocuments,
  parseDocument,
  type YAMLError,
} from 'yaml';
import type { z } from 'zod';
import { didYouMean } from '../lib/did-you-mean.js';
import type { ErrorCode } from '../lib/errors.js';
import { type Env, interpolate } from './interpolate.js';
import { type ConfigIssue, compareIssues } from './issue.js';
import { formatPath, issueAt, type PathSegment } from './positions.js';
import { knownKeys, mapZodIssues, type PlannedLookup } from './zod-issues.js';

export interface LoadOptions<S extends z.ZodType> {
  schema: S;
  env: Env;
  /** Keys of features that are planned but not built yet; reported as such, not as typos. */
  planned?: PlannedLookup | undefined;
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
  const parsed = parseConfigDocument(text, file, opts.env);
  if ('issues' in parsed) return parsed;
  return validateConfig(parsed, text, file, opts.schema, opts.planned);
}

export interface LoadWithOptions<S extends z.ZodType> {
  /** The schema for a document with these top-level keys (loaded on demand). */
  schemaFor(keys: readonly string[]): Promise<S>;
  env: Env;
  planned?: PlannedLookup | undefined;
}

/** parseConfigText with a schema chosen by the top-level keys the document has. */
export async function parseConfigTextWith<S extends z.ZodType>(
  text: string,
  file: string,
  opts: LoadWithOptions<S>,
): Promise<LoadResult<z.output<S>>> {
  const parsed = parseConfigDocument(text, file, opts.env);
  if ('issues' in parsed) return parsed;
  const contents = parsed.doc.contents;
  const keys = isMap(contents)
    ? contents.items.flatMap((p) => (isScalar(p.key) ? [String(p.key.value)] : []))
    : [];
  return validateConfig(parsed, text, file, await opts.schemaFor(keys), opts.planned);
}

export async function loadConfigFileWith<S extends z.ZodType>(
  file: string,
  opts: LoadWithOptions<S>,
): Promise<LoadResult<z.output<S>>> {
  const text = await readText(file);
  if (typeof text !== 'string') return { ok: false, issues: [text] };
  return parseConfigTextWith(text, file, opts);
}

interface ParsedConfig {
  doc: Document;
  lc: LineCounter;
  envIssues: ConfigIssue[];
}

function parseConfigDocument(
  text: string,
  file: string,
  env: Env,
): ParsedConfig | { ok: false; issues: ConfigIssue[]; text: string } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, merge: true, prettyErrors: false });
  const syntax = yamlErrors(doc, file, lc, text);
  if (syntax.length > 0) return { ok: false, issues: syntax, text };
  const envIssues = interpolate(doc, lc, env, file, text);
  return { doc, lc, envIssues };
}

function validateConfig<S extends z.ZodType>(
  { doc, lc, envIssues }: ParsedConfig,
  text: string,
  file: string,
  schema: S,
  planned: PlannedLookup | undefined,
): LoadResult<z.output<S>> {
  const v = validateDocument(doc, lc, file, schema, {
    planned,
    notAMapping: 'the config must be a mapping of sections (admin:, app:, ...)',
  });
  if (v.ok && envIssues.length === 0) return { ok: true, config: v.value, raw: v.raw, text };
  // An unresolved ${VAR} is reported once, as such, not again as the type error it causes.
  const badEnvPaths = new Set(envIssues.map((i) => i.path));
  const schemaIssues = v.ok ? [] : v.errors.filter((i) => !badEnvPaths.has(i.path));
  return { ok: false, issues: dedupe([...envIssues, ...schemaIssues]).sort(compareIssues), text };
}

export async function loadConfigFile<S extends z.ZodType>(
  file: string,
  opts: LoadOptions<S>,
): Promise<LoadResult<z.output<S>>> {
  const text = await readText(file);
  if (typeof text !== 'string') return { ok: false, issues: [text] };
  return parseConfigText(text, file, opts);
}

/** Config files are small; a larger one is a mistake (a log file passed by accident), not config. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Reads a config file as strict UTF-8, or returns the issue that says why it cannot be read. */
export async function readText(file: string): Promise<string | ConfigIssue> {
  const issue = (message: string, line = 1, col = 1): ConfigIssue => ({
    file,
    line,
    col,
    code: 'PILLION_ERR_CONFIG_READ',
    path: '(root)',
    message,
  });
  let buf: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      if (size > MAX_CONFIG_BYTES) return issue(`file is ${size} bytes; config files may be at most 1 MiB`);
      buf = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return issue(
      e.code === 'ENOENT' ? 'file not found' : e.code === 'EISDIR' ? 'is a directory, not a file' : e.message,
    );
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    // Say where: the first replacement character the lenient decoder produces marks the bad byte.
    const lenient = buf.toString('utf8');
    const at = lenient.indexOf('\uFFFD');
    const before = lenient.slice(0, Math.max(0, at));
    const line = before.split('\n').length;
    const col = at - before.lastIndexOf('\n');
    return issue('not valid UTF-8 (save the file as UTF-8)', line, col);
  }
}

export interface ValidateOptions {
  planned?: PlannedLookup | undefined;
  /** The message when the document is not a mapping. */
  notAMapping?: string;
  /**
   * For schemas that strip unknown keys (z.object): report each key the schema does not know as a
   * warning. Keys named in `ignored` get that explanation and `ignoredCode`; others are unknown —
   * errors when `strict` (as kubectl's strict field validation makes a misspelt field), else warnings.
   */
  warnUnknown?: { ignored: ReadonlyMap<string, string>; ignoredCode: ErrorCode; strict?: boolean };
}

export type DocumentValidation<T> =
  | { ok: true; value: T; raw: Record<string, unknown>; warnings: ConfigIssue[] }
  | { ok: false; errors: ConfigIssue[]; warnings: ConfigIssue[] };

/** Validates one parsed YAML document against a schema, with every issue positioned. */
export function validateDocument<S extends z.ZodType>(
  doc: Document,
  lc: LineCounter,
  file: string,
  schema: S,
  opts: ValidateOptions = {},
): DocumentValidation<z.output<S>> {
  const site = { file, doc, lc };
  const at = (path: PathSegment[], code: ErrorCode, message: string, hint?: string, key = false) =>
    issueAt(site, path, code, message, hint, key);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    return {
      ok: false,
      errors: [at([], 'PILLION_ERR_CONFIG_YAML_SYNTAX', (err as Error).message)],
      warnings: [],
    };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    const message = opts.notAMapping ?? 'the document must be a mapping';
    return { ok: false, errors: [at([], 'PILLION_ERR_CONFIG_WRONG_TYPE', message)], warnings: [] };
  }
  const warnings: ConfigIssue[] = [];
  const unknown: ConfigIssue[] = [];
  if (opts.warnUnknown) {
    const { ignored, ignoredCode, strict } = opts.warnUnknown;
    walkUnknown(schema, data, [], (path, key) => {
      const reason = ignored.get(key);
      if (reason) warnings.push(at([...path, key], ignoredCode, `ignored: ${reason}`, undefined, true));
      else {
        const guess = didYouMean(key, knownKeys(schema, path));
        const hint = guess ? `did you mean "${guess}"?` : undefined;
        const message = strict ? 'unknown field' : 'unknown field, ignored';
        (strict ? unknown : warnings).push(
          at([...path, key], 'PILLION_ERR_CONFIG_UNKNOWN_KEY', message, hint, true),
        );
      }
    });
  }
  // jitless: a config is parsed once, so compiling a fast path for each object schema (what zod
  // does on a first parse) costs start-up time and never pays back.
  const parsed = schema.safeParse(data, { jitless: true });
  if (parsed.success && unknown.length === 0)
    return { ok: true, value: parsed.data, raw: data as Record<string, unknown>, warnings };
  if (parsed.success) return { ok: false, errors: unknown, warnings };
  const errors = mapZodIssues(parsed.error.issues, {
    file,
    doc,
    lc,
    data,
    schema,
    planned: opts.planned,
  });
  return { ok: false, errors: dedupe([...unknown, ...errors]).sort(compareIssues), warnings };
}

/** Parses a multi-document YAML file; each document keeps positions in the whole text. */
export function parseDocuments(
  text: string,
  file: string,
): { ok: true; docs: Document[]; lc: LineCounter } | { ok: false; issues: ConfigIssue[] } {
  const lc = new LineCounter();
  const parsed = parseAllDocuments(text, {
    lineCounter: lc,
    uniqueKeys: true,
    merge: true,
    prettyErrors: false,
  });
  const docs = Array.isArray(parsed) ? parsed : [];
  const issues = docs.flatMap((d) => yamlErrors(d, file, lc, text));
  if (!Array.isArray(parsed)) {
    issues.push({
      file,
      line: 1,
      col: 1,
      code: 'PILLION_ERR_CONFIG_YAML_SYNTAX',
      path: '(root)',
      message: 'empty document stream',
    });
  }
  return issues.length > 0 ? { ok: false, issues: issues.sort(compareIssues) } : { ok: true, docs, lc };
}

function walkUnknown(
  schema: z.ZodType,
  data: unknown,
  path: PathSegment[],
  report: (path: PathSegment[], key: string) => void,
): void {
  if (Array.isArray(data)) {
    data.forEach((item, i) => walkUnknown(schema, item, [...path, i], report));
    return;
  }
  if (typeof data !== 'object' || data === null) return;
  const known = knownKeys(schema, path);
  if (known.length === 0) return; // a free-form map (labels, data): any key goes
  for (const [key, value] of Object.entries(data)) {
    if (!known.includes(key)) report(path, key);
    else walkUnknown(schema, value, [...path, key], report);
  }
}

function yamlErrors(doc: Document, file: string, lc: LineCounter, text: string): ConfigIssue[] {
  // An unclosed quote swallows the rest of the file: what yaml finds wrong after it follows from it.
  const unclosed = doc.errors.find((e) => isUnclosedQuote(e));
  const errors = unclosed
    ? doc.errors.filter((e) => e === unclosed || e.pos[0] < unclosed.pos[0])
    : doc.errors;
  return errors.map((e) => yamlIssue(e, file, lc, text));
}

function isUnclosedQuote(e: YAMLError): boolean {
  return e.code === 'MISSING_CHAR' && /quote/.test(e.message);
}

function yamlIssue(e: YAMLError, file: string, lc: LineCounter, text: string): ConfigIssue {
  let pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
  const code: ErrorCode =
    e.code === 'DUPLICATE_KEY' ? 'PILLION_ERR_CONFIG_DUPLICATE_KEY' : 'PILLION_ERR_CONFIG_YAML_SYNTAX';
  // yaml's messages end with a source excerpt after a colon and newline; keep the first line.
  let message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  let hint = e.code === 'TAB_AS_INDENT' ? 'indent with spaces, not tabs' : undefined;
  if (isUnclosedQuote(e)) {
    // yaml reports where the file ends; the mistake is where the quote opens.
    const quote = message.includes('"quote') ? '"' : "'";
    const opened = quoteOpening(text, e.pos[0], quote);
    pos = lc.linePos(opened);
    message = `this ${quote === '"' ? 'double' : 'single'} quote is never closed`;
    hint = `add the closing ${quote}`;
  }
  return { file, line: pos.line, col: pos.col, code, path: formatPath([]), message, hint };
}

/** Where the quoted scalar that runs to `end` opens: the last quote before it that is not escaped. */
function quoteOpening(text: string, end: number, quote: '"' | "'"): number {
  let i = text.lastIndexOf(quote, end - 1);
  for (;;) {
    if (i <= 0) return Math.max(i, 0);
    if (quote === "'" && text[i - 1] === "'") {
      i = text.lastIndexOf(quote, i - 2); // '' is an escaped quote inside single quotes
      continue;
    }
    if (quote === '"') {
      let slashes = 0;
      while (text[i - 1 - slashes] === '\\') slashes++;
      if (slashes % 2 === 1) {
        i = text.lastIndexOf(quote, i - 1); // \" inside double quotes
        continue;
      }
    }
    return i;
  }
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

/**
 * Issues found by checking what a valid config names (files, directories), positioned at the key
 * that names it in the config's text.
 */
export function issuesInText(
  text: string,
  file: string,
  found: readonly { path: PathSegment[]; code: ErrorCode; message: string; hint?: string | undefined }[],
): ConfigIssue[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, merge: true, prettyErrors: false });
  return found.map((f) => issueAt({ file, doc, lc }, f.path, f.code, f.message, f.hint)).sort(compareIssues);
}
