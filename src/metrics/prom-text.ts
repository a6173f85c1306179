// A parser of what an app's /metrics answers: Prometheus's text format 0.0.4 and OpenMetrics 1.0
// (https://prometheus.io/docs/instrumenting/exposition_formats/, https://openmetrics.io). A line
// that does not parse fails the whole scrape with its line number, as Prometheus's scraper does,
// rather than exposing part of a document. Timestamps and exemplars are not carried over: the
// series are exposed at scrape time, as a merged endpoint does.

import type { MetricSnapshot, Sample } from './registry.js';

const TYPES = new Set([
  'counter',
  'gauge',
  'histogram',
  'summary',
  'untyped',
  'unknown',
  'gaugehistogram',
  'info',
  'stateset',
]);
const SUFFIXES: Record<string, readonly string[]> = {
  counter: ['_total', '_created'],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['_sum', '_count', '_created'],
  info: ['_info'],
};

export class TextFormatError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

interface Building extends MetricSnapshot {
  values: Sample[];
}

/** The families of a text document, in the order they first appear. Throws TextFormatError. */
export function parsePrometheusText(text: string): MetricSnapshot[] {
  const families = new Map<string, Building>();
  /** Sample name → family, for names seen (a cache of the suffix search). */
  const bySample = new Map<string, Building>();
  const family = (name: string): Building => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: '', type: 'untyped', values: [] };
      families.set(name, f);
    }
    return f;
  };
  let lineNo = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
    start = end + 1;
    lineNo++;
    if (line.length === 0) continue;
    if (line.charCodeAt(0) === 35 /* # */) {
      const m = /^#\s+(HELP|TYPE|UNIT|EOF)(?:\s+(\S+)(?:\s(.*))?)?$/.exec(line);
      if (!m) continue; // a plain comment
      if (m[1] === 'EOF') break;
      const name = m[2];
      if (name === undefined || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name))
        throw new TextFormatError(lineNo, `# ${m[1]} without a valid metric name`);
      const f = family(name);
      if (m[1] === 'HELP') f.help = unescapeHelp(m[3] ?? '');
      else if (m[1] === 'TYPE') {
        const type = (m[3] ?? '').trim();
        if (!TYPES.has(type)) throw new TextFormatError(lineNo, `unknown type "${type}" for ${name}`);
        if (f.values.length > 0) throw new TextFormatError(lineNo, `# TYPE ${name} after its samples`);
        f.type = type === 'unknown' ? 'untyped' : type;
      }
      continue;
    }
    const sample = parseSample(line, lineNo);
    let f = bySample.get(sample.name);
    if (!f) {
      f = families.get(sample.name) ?? familyOfSuffixed(families, sample.name) ?? family(sample.name);
      bySample.set(sample.name, f);
    }
    if (sample.name === f.name) f.values.push({ labels: sample.labels, value: sample.value });
    else f.values.push({ labels: sample.labels, value: sample.value, metricName: sample.name });
  }
  const out: MetricSnapshot[] = [];
  for (const f of families.values()) {
    if (f.values.length === 0) continue;
    // OpenMetrics names a counter's family without _total; the text format with it.
    if (f.type === 'counter' && !f.name.endsWith('_total')) {
      const name = `${f.name}_total`;
      for (const v of f.values) if (v.metricName === name) delete v.metricName;
      out.push({ ...f, name });
    } else out.push(f);
  }
  return out;
}

function familyOfSuffixed(families: Map<string, Building>, name: string): Building | undefined {
  for (const [type, suffixes] of Object.entries(SUFFIXES)) {
    for (const s of suffixes) {
      if (!name.endsWith(s)) continue;
      const f = families.get(name.slice(0, -s.length));
      if (f && f.type === type) return f;
    }
  }
  return undefined;
}

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseSample(line: string, lineNo: number): ParsedSample {
  let i = 0;
  const n = line.length;
  while (i < n && isNameChar(line.charCodeAt(i), i === 0)) i++;
  if (i === 0) throw new TextFormatError(lineNo, 'expected a metric name');
  const name = line.slice(0, i);
  const labels: Record<string, string> = {};
  if (line.charCodeAt(i) === 123 /* { */) {
    i++;
    for (;;) {
      while (line.charCodeAt(i) === 32) i++;
      if (line.charCodeAt(i) === 125 /* } */) {
        i++;
        break;
      }
      const ls = i;
      while (i < n && isLabelChar(line.charCodeAt(i), i === ls)) i++;
      if (i === ls) throw new TextFormatError(lineNo, `expected a label name in ${name}`);
      const label = line.slice(ls, i);
      while (line.charCodeAt(i) === 32) i++;
      if (line.charCodeAt(i) !== 61 /* = */)
        throw new TextFormatError(lineNo, `expected = after label ${label}`);
      i++;
      while (line.charCodeAt(i) === 32) i++;
      if (line.charCodeAt(i) !== 34 /* " */)
        throw new TextFormatError(lineNo, `expected a quoted value for label ${label}`);
      i++;
      let value = '';
      let from = i;
      for (;;) {
        if (i >= n) throw new TextFormatError(lineNo, `unterminated value of label ${label}`);
        const c = line.charCodeAt(i);
        if (c === 34) break;
        if (c === 92 /* \ */) {
          value += line.slice(from, i);
          const e = line[i + 1];
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else throw new TextFormatError(lineNo, `bad escape \\${e ?? ''} in label ${label}`);
          i += 2;
          from = i;
          continue;
        }
        i++;
      }
      value += line.slice(from, i);
      i++;
      if (Object.hasOwn(labels, label))
        throw new TextFormatError(lineNo, `label ${label} repeated in ${name}`);
      labels[label] = value;
      while (line.charCodeAt(i) === 32) i++;
      if (line.charCodeAt(i) === 44 /* , */) i++;
      else if (line.charCodeAt(i) !== 125) throw new TextFormatError(lineNo, `expected , or } in ${name}`);
    }
  }
  if (line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9)
    throw new TextFormatError(lineNo, `expected a space and a value after ${name}`);
  while (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9) i++;
  let vEnd = i;
  while (vEnd < n && line.charCodeAt(vEnd) !== 32 && line.charCodeAt(vEnd) !== 9) vEnd++;
  const value = parseValue(line.slice(i, vEnd));
  if (value === undefined)
    throw new TextFormatError(lineNo, `"${line.slice(i, vEnd).slice(0, 40)}" is not a value (${name})`);
  // What may follow: a timestamp, and in OpenMetrics an exemplar (# {...} value [ts]).
  const rest = line.slice(vEnd).trim();
  if (rest !== '' && !rest.startsWith('#') && !/^-?\d+(\.\d+)?(\s+#.*)?$/.test(rest))
    throw new TextFormatError(lineNo, `unexpected "${rest.slice(0, 40)}" after the value of ${name}`);
  return { name, labels, value };
}

function parseValue(s: string): number | undefined {
  if (s === '') return undefined;
  switch (s) {
    case 'NaN':
      return NaN;
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
  }
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s) && !/^[-+]?0[xX][0-9a-fA-F]+$/.test(s))
    return undefined;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}

function isNameChar(c: number, first: boolean): boolean {
  return (
    (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || (!first && c >= 48 && c <= 57)
  );
}

function isLabelChar(c: number, first: boolean): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (!first && c >= 48 && c <= 57);
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_m, e: string) => (e === 'n' ? '\n' : '\\'));
}
