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

/** A family as a document declares it; `exposed` is its name once a counter gets its _total. */
export interface TextFamily {
  readonly name: string;
  exposed: string;
  help: string;
  type: string;
  /** Sample lines seen for it so far (a # TYPE after them is an error). */
  samples: number;
}

/**
 * One document read line by line, without a string made per line: comments set the families'
 * help and type, each sample line is handed over by its offsets in the text, and `take` tells
 * the family a sample name belongs to. The parsers below build their series from that.
 */
export class TextReader {
  readonly families = new Map<string, TextFamily>();
  /** Sample name → family, for names seen (a cache of the suffix search). */
  #bySample = new Map<string, TextFamily>();

  /** The family a sample of this name belongs to (made when the document names none), counted. */
  take(sample: string): TextFamily {
    let f = this.#bySample.get(sample);
    if (!f) {
      f = this.families.get(sample) ?? this.#ofSuffixed(sample) ?? this.#family(sample);
      this.#bySample.set(sample, f);
    }
    f.samples++;
    return f;
  }

  /** Lines read so far: a document may come in pieces of whole lines, read one after another. */
  #lineNo = 0;

  /**
   * Reads text to its end (or # EOF); onSample gets each sample line's start, end and number.
   * False once # EOF is read: what follows is not read.
   */
  read(text: string, onSample: (start: number, end: number, lineNo: number) => void): boolean {
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      const next = end + 1;
      if (end > start && text.charCodeAt(end - 1) === 13) end--;
      const lineNo = ++this.#lineNo;
      if (end === start) {
        start = next;
        continue;
      }
      if (text.charCodeAt(start) === 35 /* # */) {
        if (this.#comment(text.slice(start, end), lineNo)) return false;
      } else onSample(start, end, lineNo);
      start = next;
    }
    return true;
  }

  /** A comment line: HELP, TYPE, UNIT, or plain; true at # EOF. */
  #comment(line: string, lineNo: number): boolean {
    const m = /^#\s+(HELP|TYPE|UNIT|EOF)(?:\s+(\S+)(?:\s(.*))?)?$/.exec(line);
    if (!m) return false; // a plain comment
    if (m[1] === 'EOF') return true;
    const name = m[2];
    if (name === undefined || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name))
      throw new TextFormatError(lineNo, `# ${m[1]} without a valid metric name`);
    const f = this.families.get(name) ?? this.#family(name);
    if (m[1] === 'HELP') f.help = unescapeHelp(m[3] ?? '');
    else if (m[1] === 'TYPE') {
      const type = (m[3] ?? '').trim();
      if (!TYPES.has(type)) throw new TextFormatError(lineNo, `unknown type "${type}" for ${name}`);
      if (f.samples > 0) throw new TextFormatError(lineNo, `# TYPE ${name} after its samples`);
      f.type = type === 'unknown' ? 'untyped' : type;
      // OpenMetrics names a counter's family without _total; the text format with it.
      f.exposed = f.type === 'counter' && !name.endsWith('_total') ? `${name}_total` : name;
    }
    return false;
  }

  #family(name: string): TextFamily {
    const f: TextFamily = { name, exposed: name, help: '', type: 'untyped', samples: 0 };
    this.families.set(name, f);
    return f;
  }

  #ofSuffixed(name: string): TextFamily | undefined {
    for (const [type, suffixes] of Object.entries(SUFFIXES)) {
      for (const s of suffixes) {
        if (!name.endsWith(s)) continue;
        const f = this.families.get(name.slice(0, -s.length));
        if (f && f.type === type) return f;
      }
    }
    return undefined;
  }
}

/** The name a sample is written with when it is not its family's (a histogram's _bucket, ...). */
export function sampleName(f: TextFamily, name: string): string | undefined {
  return name === f.name || name === f.exposed ? undefined : name;
}

/** The families of a text document, in the order they first appear. Throws TextFormatError. */
export function parsePrometheusText(text: string): MetricSnapshot[] {
  const reader = new TextReader();
  const values = new Map<TextFamily, Sample[]>();
  reader.read(text, (start, end, lineNo) => {
    const s = parseSample(text, start, end, lineNo);
    const f = reader.take(s.name);
    const metricName = sampleName(f, s.name);
    const sample: Sample =
      metricName === undefined
        ? { labels: s.labels, value: s.value }
        : { labels: s.labels, value: s.value, metricName };
    const list = values.get(f);
    if (list) list.push(sample);
    else values.set(f, [sample]);
  });
  const out: MetricSnapshot[] = [];
  for (const f of reader.families.values()) {
    const list = values.get(f);
    if (list) out.push({ name: f.exposed, help: f.help, type: f.type, values: list });
  }
  return out;
}

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Where the series text (the name and the label block) ends in the document. */
  seriesEnd: number;
}

/** The sample line from start to end of text (no line break). Throws TextFormatError. */
export function parseSample(text: string, start: number, end: number, lineNo: number): ParsedSample {
  let i = start;
  const n = end;
  while (i < n && isNameChar(text.charCodeAt(i), i === start)) i++;
  if (i === start) throw new TextFormatError(lineNo, 'expected a metric name');
  const name = text.slice(start, i);
  const labels: Record<string, string> = {};
  if (text.charCodeAt(i) === 123 /* { */) {
    i++;
    for (;;) {
      while (i < n && text.charCodeAt(i) === 32) i++;
      if (i < n && text.charCodeAt(i) === 125 /* } */) {
        i++;
        break;
      }
      const ls = i;
      while (i < n && isLabelChar(text.charCodeAt(i), i === ls)) i++;
      if (i === ls) throw new TextFormatError(lineNo, `expected a label name in ${name}`);
      const label = text.slice(ls, i);
      while (i < n && text.charCodeAt(i) === 32) i++;
      if (i >= n || text.charCodeAt(i) !== 61 /* = */)
        throw new TextFormatError(lineNo, `expected = after label ${label}`);
      i++;
      while (i < n && text.charCodeAt(i) === 32) i++;
      if (i >= n || text.charCodeAt(i) !== 34 /* " */)
        throw new TextFormatError(lineNo, `expected a quoted value for label ${label}`);
      i++;
      let value = '';
      let from = i;
      for (;;) {
        if (i >= n) throw new TextFormatError(lineNo, `unterminated value of label ${label}`);
        const c = text.charCodeAt(i);
        if (c === 34) break;
        if (c === 92 /* \ */) {
          value += text.slice(from, i);
          const e = i + 1 < n ? text[i + 1] : undefined;
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else throw new TextFormatError(lineNo, `bad escape \\${e ?? ''} in label ${label}`);
          i += 2;
          from = i;
          continue;
        }
        i++;
      }
      value += text.slice(from, i);
      i++;
      if (Object.hasOwn(labels, label))
        throw new TextFormatError(lineNo, `label ${label} repeated in ${name}`);
      labels[label] = value;
      while (i < n && text.charCodeAt(i) === 32) i++;
      if (i < n && text.charCodeAt(i) === 44 /* , */) i++;
      else if (i >= n || text.charCodeAt(i) !== 125)
        throw new TextFormatError(lineNo, `expected , or } in ${name}`);
    }
  }
  return { name, labels, value: readValue(text, i, end, lineNo, name), seriesEnd: i };
}

/**
 * The value of a sample line whose series text ends at i: the whitespace, the value, and what
 * may follow it (a timestamp, and in OpenMetrics an exemplar: # {...} value [ts]).
 */
export function readValue(text: string, i: number, end: number, lineNo: number, name: string): number {
  let c = i < end ? text.charCodeAt(i) : -1;
  if (c !== 32 && c !== 9) throw new TextFormatError(lineNo, `expected a space and a value after ${name}`);
  while (i < end && ((c = text.charCodeAt(i)) === 32 || c === 9)) i++;
  let vEnd = i;
  while (vEnd < end && (c = text.charCodeAt(vEnd)) !== 32 && c !== 9) vEnd++;
  const raw = text.slice(i, vEnd);
  const value = parseValue(raw);
  if (value === undefined)
    throw new TextFormatError(lineNo, `"${raw.slice(0, 40)}" is not a value (${name})`);
  if (vEnd < end) {
    const rest = text.slice(vEnd, end).trim();
    if (rest !== '' && !rest.startsWith('#') && !/^-?\d+(\.\d+)?(\s+#.*)?$/.test(rest))
      throw new TextFormatError(lineNo, `unexpected "${rest.slice(0, 40)}" after the value of ${name}`);
  }
  return value;
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
