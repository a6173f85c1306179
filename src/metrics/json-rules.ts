// JSON mapped to series by rules, json_exporter's idea with JSONPath from jsonpath-plus: a rule's
// `path` selects elements (one series each), `value` and `labels` are read from each element. A
// relative path made of plain keys ($.a.b) is walked directly: with 10 000 elements, asking the
// library 10 000 times per label would cost more than the rest of the scrape.

import { JSONPath } from 'jsonpath-plus';
import { Interner, ownString } from '../lib/own-string.js';
import type { JsonRule } from './config.js';
import type { MetricSnapshot, Sample } from './registry.js';

/** Why a value or a series was left out; counted by the scraper, never silent. */
export type SkipReason = 'no_match' | 'not_a_number' | 'label_too_long' | 'duplicate';

export type Skip = (reason: SkipReason, rule: string, detail: string) => void;

type Getter = (element: unknown, key: string | number | undefined) => unknown;

interface CompiledRule {
  rule: JsonRule;
  /** Calls each with every element the path selects (and its key); returns how many. */
  select: (doc: unknown, each: (value: unknown, key: string | number | undefined) => void) => number;
  value: Getter;
  labels: [string, Getter][];
}

export interface JsonMapper {
  /** The families of one document; skipped values reported through skip. */
  map(doc: unknown, skip: Skip): MetricSnapshot[];
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
  const extraNames = new Set(extra.map(([n]) => n));
  // Short label values (a shard, a state) repeat across series: one kept copy each.
  const interned = new Interner();
  const compiled: CompiledRule[] = rules.map((rule) => ({
    rule,
    select: selector(rule.path),
    value: getter(rule.value),
    labels: Object.entries(rule.labels).map(([name, spec]) => [
      extraNames.has(name) ? `exported_${name}` : name,
      labelGetter(spec),
    ]),
  }));
  // A series is kept by its labels from one scrape to the next and gets the new value: 10 000
  // series scraped again make no new objects (not even a map of them), and the exposition reuses
  // what it wrote for them. `seen` says which scrape last gave it (a second time is a duplicate).
  const kept = new Map<string, Map<string, { sample: Sample; seen: number }>>();
  let scrape = 0;
  const values: string[] = [];
  return {
    map(doc, skip) {
      scrape++;
      const families = new Map<string, MetricSnapshot>();
      for (const c of compiled) {
        const { rule } = c;
        let f = families.get(rule.name);
        if (!f) {
          f = { name: rule.name, help: rule.help, type: rule.type, values: [] };
          families.set(rule.name, f);
        }
        const out = f.values as Sample[];
        let byKey = kept.get(rule.name);
        if (!byKey) {
          byKey = new Map();
          kept.set(rule.name, byKey);
        }
        const series = byKey;
        const matched = c.select(doc, (element, elementKey) => {
          const raw = c.value(element, elementKey);
          const value = toNumber(raw, rule.valueMap);
          if (value === undefined) {
            if (raw === undefined) skip('no_match', rule.name, `value ${rule.value} matches nothing`);
            else skip('not_a_number', rule.name, `value ${describe(raw)} is not a number`);
            return;
          }
          let key = '';
          for (let i = 0; i < c.labels.length; i++) {
            const [name, get] = c.labels[i]!;
            const v = get(element, elementKey);
            if (v === undefined || v === null || typeof v === 'object') {
              skip('no_match', rule.name, `label ${name} matches no scalar`);
              return;
            }
            const str = String(v);
            if (str.length > maxLabelValueLength) {
              skip(
                'label_too_long',
                rule.name,
                `label ${name} is ${str.length} characters, over ${maxLabelValueLength}`,
              );
              return;
            }
            values[i] = str;
            key += i === 0 ? str : `\u0000${str}`;
          }
          const k = series.get(key);
          if (k !== undefined && k.seen === scrape) {
            skip('duplicate', rule.name, 'two elements give the same labels');
            return;
          }
          if (k !== undefined) {
            k.sample.value = value;
            k.seen = scrape;
            out.push(k.sample);
            return;
          }
          const labels: Record<string, string> = {};
          // Kept for later scrapes: its own strings, not views into the document's text.
          for (let i = 0; i < c.labels.length; i++) labels[c.labels[i]![0]] = interned.labelValue(values[i]!);
          for (let i = 0; i < extra.length; i++) labels[extra[i]![0]] = extra[i]![1];
          const sample = { labels, value };
          series.set(ownString(key), { sample, seen: scrape });
          out.push(sample);
        });
        if (matched === 0) skip('no_match', rule.name, `path ${rule.path} matches nothing`);
      }
      // A series this document did not give is not kept: it disappears from the exposition.
      for (const series of kept.values())
        for (const [key, k] of series) if (k.seen !== scrape) series.delete(key);
      return [...families.values()].filter((f) => f.values.length > 0);
    },
  };
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
  const parts = JSONPath.toPathArray(path) as string[];
  const parent = parts.at(-1) === '*' ? plainKeys(path.replace(/(\[\*\]|\.\*)$/, '')) : undefined;
  if (parent && parts.length === parent.length + 2) {
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
  const keys = plainKeys(path);
  if (keys) {
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
