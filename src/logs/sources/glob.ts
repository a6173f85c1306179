// File name patterns for the tail source (`*`, `?`, `**`, `[...]`): a matcher compiled once per
// pattern and a directory walk that reads only the directories a pattern can reach. A directory or
// file the walk cannot read (permissions, I/O) is reported, never skipped in silence.

import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';

/** `**` below this many directories is not followed (a bound, and a guard against link loops). */
const MAX_DEPTH = 32;
/** A walk stops after this many matches (a bound on memory for a runaway pattern). */
const MAX_MATCHES = 100_000;

/** Paths a walk could not read, with the error code (EACCES, EIO, ...); a path that does not exist is not one. */
export type WalkErrors = Map<string, string>;

function hasMagic(segment: string): boolean {
  return /[*?[]/.test(segment);
}

/** The regular expression text of one path segment (no `/` inside). */
function segmentSource(seg: string): string {
  let out = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') {
      while (seg[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const close = seg.indexOf(']', i + 2);
      if (close < 0) {
        out += '\\[';
        continue;
      }
      let body = seg.slice(i + 1, close);
      let negate = false;
      if (body[0] === '!' || body[0] === '^') {
        negate = true;
        body = body.slice(1);
      }
      body = body.replace(/[\\\]^]/g, (m) => `\\${m}`);
      out += negate ? `[^/${body}]` : `[${body}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|\\/]/g, (m) => `\\${m}`);
  }
  return out;
}

/** A compiled pattern: `matches` tests a whole (absolute) path. */
export class Glob {
  readonly pattern: string;
  #segments: string[];
  #segRe: (RegExp | undefined)[];
  #full: RegExp;
  /** The directory before the first segment with a wildcard. */
  readonly base: string;
  #firstMagic: number;

  constructor(pattern: string, cwd = process.cwd()) {
    const abs = isAbsolute(pattern) ? pattern : join(cwd, pattern);
    this.pattern = abs;
    const parts = abs.split(sep === '\\' ? /[\\/]/ : '/');
    this.#segments = parts.slice(1);
    this.#segRe = this.#segments.map((s) =>
      s === '**' || !hasMagic(s) ? undefined : new RegExp(`^${segmentSource(s)}$`),
    );
    let first = this.#segments.findIndex((s) => hasMagic(s));
    if (first < 0) first = this.#segments.length;
    this.#firstMagic = first;
    this.base = resolve('/', ...this.#segments.slice(0, first));
    let src = '';
    for (let i = 0; i < this.#segments.length; i++) {
      const s = this.#segments[i]!;
      if (s === '**') src += i === this.#segments.length - 1 ? '(?:/.*)?' : '(?:/[^/]+)*';
      else src += '/' + segmentSource(s);
    }
    this.#full = new RegExp(`^${src}$`);
  }

  matches(path: string): boolean {
    return this.#full.test(path);
  }

  /** The pattern has no wildcard: it names one file (base is that file's path). */
  get isFixed(): boolean {
    return this.#firstMagic >= this.#segments.length;
  }

  /** Regular files (symbolic links followed) whose path matches, found by walking from base. */
  async files(out: Set<string> = new Set(), errors?: WalkErrors): Promise<Set<string>> {
    if (this.#firstMagic >= this.#segments.length) {
      if (await isFile(this.base, errors)) out.add(this.base);
      return out;
    }
    await this.#walk(this.base, this.#firstMagic, 0, out, errors);
    return out;
  }

  async #walk(
    dir: string,
    i: number,
    depth: number,
    out: Set<string>,
    errors: WalkErrors | undefined,
  ): Promise<void> {
    if (out.size >= MAX_MATCHES) return;
    const seg = this.#segments[i];
    const last = i === this.#segments.length - 1;
    if (seg === undefined) return;
    if (seg === '**') {
      // Zero directories here, or one more and the same `**` again.
      if (last) {
        await this.#all(dir, depth, out, errors);
        return;
      }
      await this.#walk(dir, i + 1, depth, out, errors);
      if (depth >= MAX_DEPTH) return;
      for (const e of await list(dir, errors)) {
        // Symbolic links to directories are not followed under `**` (they can loop).
        if (e.isDirectory()) await this.#walk(join(dir, e.name), i, depth + 1, out, errors);
      }
      return;
    }
    const re = this.#segRe[i];
    if (re === undefined) {
      const p = join(dir, seg);
      if (last) {
        if (await isFile(p, errors)) out.add(p);
      } else await this.#walk(p, i + 1, depth, out, errors);
      return;
    }
    for (const e of await list(dir, errors)) {
      if (!re.test(e.name)) continue;
      const p = join(dir, e.name);
      if (last) {
        if (e.isFile() || (e.isSymbolicLink() && (await isFile(p, errors)))) out.add(p);
      } else if (e.isDirectory() || e.isSymbolicLink()) await this.#walk(p, i + 1, depth, out, errors);
    }
  }

  async #all(dir: string, depth: number, out: Set<string>, errors: WalkErrors | undefined): Promise<void> {
    for (const e of await list(dir, errors)) {
      const p = join(dir, e.name);
      if (e.isFile() || (e.isSymbolicLink() && (await isFile(p, errors)))) out.add(p);
      else if (e.isDirectory() && depth < MAX_DEPTH) await this.#all(p, depth + 1, out, errors);
    }
  }
}

/** Whether an error means "not there" (normal for a pattern) rather than "cannot read". */
export function isAbsent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function note(errors: WalkErrors | undefined, path: string, err: unknown): void {
  if (errors && !isAbsent(err)) errors.set(path, (err as NodeJS.ErrnoException).code ?? String(err));
}

async function list(dir: string, errors: WalkErrors | undefined): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    note(errors, dir, err);
    return [];
  }
}

async function isFile(p: string, errors: WalkErrors | undefined): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch (err) {
    note(errors, p, err);
    return false;
  }
}

/** Files matched by any include pattern and by no exclude pattern, sorted; `errors` gets what could not be read. */
export async function globFiles(
  include: readonly Glob[],
  exclude: readonly Glob[],
  errors?: WalkErrors,
): Promise<string[]> {
  const found = new Set<string>();
  for (const g of include) await g.files(found, errors);
  const out: string[] = [];
  for (const p of found) if (!exclude.some((g) => g.matches(p))) out.push(p);
  return out.sort();
}
