// JSON mapped to series by rules, json_exporter's idea with JSONPath from jsonpath-plus: a rule's
// `path` selects elements (one series each), `value` and `labels` are read from each element. A
// relative path made of plain keys ($.a.b) is walked directly: with 10 000 elements, asking the
// library 10 000 times per label would cost more than the rest of the scrape. When every path of
// every rule is of that kind, the document is not parsed at all: json-scan.ts reads the rules'
// values from its bytes (mapBytes), and `map` walks a parsed document only otherwise.

import { JSONPath } from 'jsonpath-plus';
import { Interner, ownString } from '../lib/own-string.js';
import type { JsonRule } from './config.js';
import {
  ASCII,
  CELLS,
  type Elements,
  NUMBER,
  type JsonScan,
  sameText,
  type ScanRule,
  scanPlan,
  slotNumber,
  slotValue,
} from './json-scan.js';
import type { MetricSnapshot, Sample } from './registry.js';

/** Why a value or a series was left out; counted by the scraper, never silent. */
export type SkipReason = 'no_match' | 'not_a_number' | 'label_too_long' | 'duplicate';

export type Skip = (reason: SkipReason, rule: string, detail: string) => void;

type Getter = (element: unknown, key: string | number | undefined) => unknown;

type Each = (element: unknown, key: string | number | undefined) => void;

/** Where a scanned rule's value or label comes from: a slot's cells, the element's key, a text. */
interface Source {
  from: typeof SLOT | typeof KEY | typeof TEXT;
  /** A slot's first cell in the element's row. */
  at: number;
  text: string;
}
const SLOT = 0;
const KEY = 1;
const TEXT = 2;

interface Kept {
  sample: Sample;
  /** The scrape that last gave it. */
  seen: number;
  /** Its label values joined by NUL, its key in the family's map. */
  key: string;
}

interface CompiledRule {
  rule: JsonRule;
  /** Calls each with every element the path selects (and its key); returns how many. */
  select: (doc: unknown, each: Each) => number;
  value: Getter;
  labelNames: string[];
  labels: Getter[];
  /**
   * Where its series are kept: by family and label names, so that two rules of one family with
   * other labels ({queue} and {worker}) neither share a series nor count each other's as a
   * duplicate; rules with the same names do both.
   */
  kept: string;
  /** Read from the bytes (json-scan.ts): where the value and labels are in an element's row. */
  scanned?: { value: Source; labels: Source[]; width: number };
  /** The series each element gave at the last scrape read from the bytes, by element. */
  order: (Kept | undefined)[];
  /** The list the next scan's order is written into (the one before last, emptied). */
  spare: (Kept | undefined)[];
}

export interface JsonMapper {
  /** The families of one document; skipped values reported through skip. */
  map(doc: unknown, skip: Skip): MetricSnapshot[];
  /**
   * The same, read straight from the document's bytes; undefined when these rules or this
   * document need the whole document parsed (then `map` it). A document that is not JSON is
   * undefined too: JSON.parse gives the error.
   */
  mapBytes(body: Buffer, skip: Skip): MetricSnapshot[] | undefined;
}

/**
 * The rules compiled once. `extra` are labels every series gets after its own (the enrichment;
 * a rule's label of the same name is renamed exported_NAME), set while each series is made
 * rather than copied onto it afterwards: 10 000 series, one object each.
 */
export function compileRules(
  rules: readonly JsonRule[],
  maxLabelValueLength: number,
  extra: readonly (readonly [string, string])[] = [],
): JsonMapper {
  return new RulesMapper(rules, maxLabelValueLength, extra);
}

/**
 * A series is kept by its labels from one scrape to the next and gets the new value: 10 000
 * series scraped again make no new objects (not even a map of them), and the exposition reuses
 * what it wrote for them. The work per element is in methods, not in closures made per scrape,
 * so the code V8 optimizes for it is there at the next scrape, ten seconds later.
 */
class RulesMapper implements JsonMapper {
  readonly #compiled: CompiledRule[];
  readonly #plan: JsonScan | undefined;
  readonly #max: number;
  readonly #extra: readonly (readonly [string, string])[];
  // Short label values (a shard, a state) repeat across series: one kept copy each.
  readonly #interned = new Interner();
  /** Per family and label names, its series by key. */
  readonly #kept = new Map<string, Map<string, Kept>>();
  /** The scrape under way: a series seen in it a second time is a duplicate. */
  #scrape = 0;
  /** The label values of the element being read. */
  readonly #values: string[] = [];
  #skip: Skip = () => {};
  // The rule being applied: its family's series and the samples of this scrape.
  #family = new Map<string, Kept>();
  #out: Sample[] = [];

  constructor(rules: readonly JsonRule[], max: number, extra: readonly (readonly [string, string])[]) {
    const extraNames = new Set(extra.map(([n]) => n));
    this.#max = max;
    this.#extra = extra;
    this.#compiled = rules.map((rule) => {
      const labelNames = Object.keys(rule.labels).map((name) =>
        extraNames.has(name) ? `exported_${name}` : name,
      );
      return {
        rule,
        select: selector(rule.path),
        value: getter(rule.value),
        labelNames,
        labels: Object.values(rule.labels).map(labelGetter),
        kept: [rule.name, ...labelNames].join('\u0000'),
        order: [],
        spare: [],
      };
    });
    this.#plan = scanned(this.#compiled);
  }

  map(doc: unknown, skip: Skip): MetricSnapshot[] {
    return this.#apply(skip, (c) => {
      // The order of a scan is not this document's.
      c.order.length = 0;
      return c.select(doc, (element, key) => this.#element(c, element, key));
    });
  }

  mapBytes(body: Buffer, skip: Skip): MetricSnapshot[] | undefined {
    const found = this.#plan?.scan(body);
    if (found === undefined) return undefined;
    return this.#apply(skip, (c, index) => {
      this.#scanned(c, body, found.elements[index]!);
      return found.matched[index]!;
    });
  }

  /** The families, each rule's elements read by `elements` (which says how many matched). */
  #apply(skip: Skip, elements: (c: CompiledRule, index: number) => number): MetricSnapshot[] {
    this.#skip = skip;
    const scrape = ++this.#scrape;
    const families = new Map<string, MetricSnapshot>();
    for (const [index, c] of this.#compiled.entries()) {
      const { rule } = c;
      let f = families.get(rule.name);
      if (!f) {
        f = { name: rule.name, help: rule.help, type: rule.type, values: [] };
        families.set(rule.name, f);
      }
      this.#out = f.values as Sample[];
      let family = this.#kept.get(c.kept);
      if (!family) this.#kept.set(c.kept, (family = new Map()));
      this.#family = family;
      if (elements(c, index) === 0) skip('no_match', rule.name, `path ${rule.path} matches nothing`);
    }
    // A series this document did not give is not kept: it disappears from the exposition.
    for (const family of this.#kept.values())
      for (const k of family.values()) if (k.seen !== scrape) family.delete(k.key);
    return [...families.values()].filter((f) => f.values.length > 0);
  }

  /** An element of a parsed document. */
  #element(c: CompiledRule, element: unknown, elementKey: string | number | undefined): void {
    const value = this.#number(c, c.value(element, elementKey));
    if (value === undefined) return;
    for (let i = 0; i < c.labels.length; i++)
      if (!this.#label(c, i, c.labels[i]!(element, elementKey))) return;
    const key = this.#joined(c);
    if (this.#keep(c, key, value, this.#family.get(key)) === undefined) this.#duplicate(c);
  }

  /** A rule's elements read from the bytes (json-scan.ts). */
  #scanned(c: CompiledRule, body: Buffer, elements: Elements): void {
    const { value: from, labels, width } = c.scanned!;
    const cells = elements.cells;
    const stride = 1 + width * CELLS;
    const last = c.order;
    // Two lists in turn, not a new one of 10 000 entries per scrape.
    const order = c.spare;
    for (let row = 0, n = 0; row < elements.length; row += stride, n++) {
      // One entry per element, a hole never (a list with holes is read another way by V8);
      // written over the last but one scrape's (emptying it would free its store).
      if (n < order.length) order[n] = undefined;
      else order.push(undefined);
      const elementKey = elements.keyAt(row);
      // The value: a number in the bytes is read without a string.
      let value: number | undefined;
      if (from.from === SLOT && cells[row + 1 + from.at] === NUMBER)
        value = slotNumber(body, cells, row + 1 + from.at);
      if (value === undefined || !Number.isFinite(value))
        value = this.#number(c, sourceValue(body, cells, row, from, elementKey));
      if (value === undefined) continue;
      // The labels: the series this element gave last time when its bytes are that series'
      // label values (no string made), else made and looked up. (Every series in `last` is
      // still kept: each was seen by the scrape that made the list, and `map` empties it.)
      const before = last[n];
      let k: Kept | undefined;
      if (before !== undefined && sameLabels(body, cells, row, labels, elementKey, before.key))
        k = this.#keep(c, before.key, value, before);
      else {
        let i = 0;
        while (i < labels.length && this.#label(c, i, sourceValue(body, cells, row, labels[i]!, elementKey)))
          i++;
        if (i < labels.length) continue;
        const key = this.#joined(c);
        k = this.#keep(c, key, value, this.#family.get(key));
      }
      if (k === undefined) this.#duplicate(c);
      else order[n] = k;
    }
    order.length = elements.length / stride;
    c.order = order;
    c.spare = last;
  }

  /** The number of a raw value, or undefined (skipped, and why). */
  #number(c: CompiledRule, raw: unknown): number | undefined {
    const number = toNumber(raw, c.rule.valueMap);
    if (number === undefined) {
      if (raw === undefined) this.#skip('no_match', c.rule.name, `value ${c.rule.value} matches nothing`);
      else this.#skip('not_a_number', c.rule.name, `value ${describe(raw)} is not a number`);
    }
    return number;
  }

  /** Label i's value, into #values; false when it is skipped (and why). */
  #label(c: CompiledRule, i: number, v: unknown): boolean {
    const name = c.labelNames[i]!;
    if (v === undefined || v === null || typeof v === 'object') {
      this.#skip('no_match', c.rule.name, `label ${name} matches no scalar`);
      return false;
    }
    const str = String(v);
    if (str.length > this.#max) {
      this.#skip(
        'label_too_long',
        c.rule.name,
        `label ${name} is ${str.length} characters, over ${this.#max}`,
      );
      return false;
    }
    this.#values[i] = str;
    return true;
  }

  /** The key of the labels in #values: their values joined by NUL. */
  #joined(c: CompiledRule): string {
    let key = '';
    for (let i = 0; i < c.labelNames.length; i++)
      key += i === 0 ? this.#values[i]! : `\u0000${this.#values[i]!}`;
    return key;
  }

  /**
   * The series of this key (found: the one already kept, if any) given this value; made from
   * #values when new. Undefined when this scrape gave it already: a duplicate.
   */
  #keep(c: CompiledRule, key: string, value: number, found: Kept | undefined): Kept | undefined {
    if (found !== undefined && found.seen === this.#scrape) return undefined;
    if (found !== undefined) {
      found.sample.value = value;
      found.seen = this.#scrape;
      this.#out.push(found.sample);
      return found;
    }
    const labels: Record<string, string> = {};
    // Kept for later scrapes: its own strings, not views into the document's text.
    for (let i = 0; i < c.labelNames.length; i++)
      labels[c.labelNames[i]!] = this.#interned.labelValue(this.#values[i]!);
    for (const [name, v] of this.#extra) labels[name] = v;
    const sample = { labels, value };
    const made = { sample, seen: this.#scrape, key: ownString(key) };
    this.#family.set(made.key, made);
    this.#out.push(sample);
    return made;
  }

  #duplicate(c: CompiledRule): void {
    this.#skip('duplicate', c.rule.name, 'two elements give the same labels');
  }
}

/** A scanned element's value from a source: its slot's, its key, or a text. */
function sourceValue(
  b: Buffer,
  cells: Int32Array,
  row: number,
  source: Source,
  elementKey: unknown,
): unknown {
  return source.from === SLOT
    ? slotValue(b, cells, row + 1 + source.at)
    : source.from === KEY
      ? elementKey
      : source.text;
}

/** Whether a scanned element's labels are the values joined in key, compared in place. */
function sameLabels(
  b: Buffer,
  cells: Int32Array,
  row: number,
  labels: readonly Source[],
  elementKey: unknown,
  key: string,
): boolean {
  let from = 0;
  for (let i = 0; i < labels.length; i++) {
    const end = i === labels.length - 1 ? key.length : key.indexOf('\u0000', from);
    if (end < 0) return false;
    const source = labels[i]!;
    if (source.from === SLOT) {
      const at = row + 1 + source.at;
      if (cells[at] !== ASCII || !sameText(b, cells, at, key, from, end)) return false;
    } else {
      const text = source.from === TEXT ? source.text : String(elementKey);
      if (end - from !== text.length || !key.startsWith(text, from)) return false;
    }
    from = end + 1;
  }
  return true;
}

/**
 * The rules as json-scan.ts reads them, when every path is plain keys (the element, or each
 * child of a list or map at plain keys); sets each rule's `scanned` sources. Undefined otherwise.
 */
function scanned(compiled: CompiledRule[]): JsonScan | undefined {
  const specs: ScanRule[] = [];
  for (const c of compiled) {
    const where = shape(c.rule.path);
    if (where === undefined) return undefined;
    const slots: string[][] = [];
    const source = (spec: string, literal: boolean): Source | undefined => {
      if (spec === '@key') return { from: KEY, at: 0, text: '' };
      if (literal && !spec.startsWith('$')) return { from: TEXT, at: 0, text: spec };
      const keys = plainKeys(spec);
      if (keys === undefined) return undefined;
      return { from: SLOT, at: (slots.push(keys) - 1) * CELLS, text: '' };
    };
    const value = source(c.rule.value, false);
    const labels = Object.values(c.rule.labels).map((spec) => source(spec, true));
    if (value === undefined || labels.some((l) => l === undefined)) return undefined;
    c.scanned = { value, labels: labels as Source[], width: slots.length };
    specs.push({ ...where, slots });
  }
  return scanPlan(specs);
}

/**
 * A path of plain keys ($.a.b: `container` is its element) or plain keys then every child
 * ($.a.b[*] or $.a.b.*: each child of `container` is an element); undefined for any other path.
 */
function shape(path: string): { container: string[]; each: boolean } | undefined {
  const parts = JSONPath.toPathArray(path) as string[];
  const parent = parts.at(-1) === '*' ? plainKeys(path.replace(/(\[\*\]|\.\*)$/, '')) : undefined;
  if (parent !== undefined && parts.length === parent.length + 2) return { container: parent, each: true };
  const keys = plainKeys(path);
  return keys === undefined ? undefined : { container: keys, each: false };
}

function toNumber(v: unknown, valueMap: Readonly<Record<string, number>>): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    if (Object.hasOwn(valueMap, v)) return valueMap[v];
    const t = v.trim();
    if (t === '') return undefined;
    const n = Number(t);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : String(v);
}

/** Plain keys of a path like $.a.b or $['a'].b, or undefined when it has wildcards or filters. */
function plainKeys(path: string): string[] | undefined {
  const parts = JSONPath.toPathArray(path) as string[];
  if (parts[0] !== '$') return undefined;
  const keys = parts.slice(1);
  return keys.every((k) => typeof k === 'string' && !/[*?@()~^$]|\.\./.test(k) && k !== '')
    ? keys
    : undefined;
}

function selector(path: string): CompiledRule['select'] {
  // $.a.b[*] and $.a.b.* (the usual shapes: each element of a list, each entry of a map) are
  // walked directly too; the library builds a path string per match, 5 ms per thousand.
  const where = shape(path);
  if (where?.each) {
    const parent = where.container;
    return (doc, each) => {
      let v = doc;
      for (const k of parent) {
        if (v === null || typeof v !== 'object') return 0;
        v = (v as Record<string, unknown>)[k];
      }
      if (v === null || typeof v !== 'object') return 0;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) each(v[i], i);
        return v.length;
      }
      const keys = Object.keys(v);
      for (const k of keys) each((v as Record<string, unknown>)[k], k);
      return keys.length;
    };
  }
  if (where) {
    const keys = where.container;
    return (doc, each) => {
      let v = doc;
      for (const k of keys) {
        if (v === null || typeof v !== 'object') return 0;
        v = (v as Record<string, unknown>)[k];
      }
      if (v === undefined) return 0;
      each(v, keys.at(-1));
      return 1;
    };
  }
  return (doc, each) => {
    const all = JSONPath({
      path,
      json: doc as object,
      resultType: 'all',
      wrap: true,
      eval: 'safe',
    }) as { value: unknown; parentProperty: string | number | null }[] | undefined;
    for (const r of all ?? []) each(r.value, r.parentProperty ?? undefined);
    return all?.length ?? 0;
  };
}

function getter(path: string): Getter {
  if (path === '@key') return (_e, key) => key;
  const keys = plainKeys(path);
  if (keys) {
    return (element) => {
      let v = element;
      for (const k of keys) {
        if (v === null || typeof v !== 'object') return undefined;
        v = (v as Record<string, unknown>)[k];
      }
      return v;
    };
  }
  return (element) => {
    if (element === null || typeof element !== 'object') return undefined;
    const r = JSONPath({ path, json: element, wrap: true, eval: 'safe' }) as unknown[] | undefined;
    return r?.[0];
  };
}

/** A label's spec: "@key", a JSONPath from the element, or a literal value. */
function labelGetter(spec: string): Getter {
  if (spec === '@key' || spec.startsWith('$')) return getter(spec);
  return () => spec;
}
