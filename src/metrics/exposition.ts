// The exposition formats /metrics answers in, chosen by the scraper's Accept header: Prometheus's
// text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), and
// OpenMetrics 1.0.0 (https://openmetrics.io), which Prometheus asks for first. Both: a HELP and a
// TYPE line per family, then one line per sample; label values escape backslash, newline and the
// double quote; values are Go-style floats (NaN, +Inf, -Inf). OpenMetrics names a counter's
// family without its _total suffix, calls untyped "unknown" and ends with # EOF.

import type { ServerResponse } from 'node:http';
import { ownString } from '../lib/own-string.js';
import type { MetricSnapshot, Sample } from './registry.js';

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export type ExpositionFormat = 'text' | 'openmetrics';

/**
 * What was written for a labels object, kept while the object lives: series that last (the
 * registry's, the app's from one scrape to the next) are not written anew at every scrape, only
 * their values. Labels objects are not changed once a sample holds them (relabeling in place sets
 * the same values again), so what is kept stays true. What is kept is the line's start: the
 * sample's name, the label set and the space before the value, for the name last written with
 * it (a histogram's _sum and _count share their labels), one flat string; the label set is read
 * back from it when the name changes.
 */
const WRITTEN = new WeakMap<object, string>();

function lineStart(name: string, labels: Readonly<Record<string, string | number>>): string {
  const line = WRITTEN.get(labels);
  // Written with this name: the label set ({...}, or none) follows the name.
  if (line !== undefined && line.startsWith(name)) {
    const c = line.charCodeAt(name.length);
    if (c === 123 /* { */ || c === 32) return line;
  }
  const set = line === undefined ? labelSet(labels) : line.slice(line.search(/[{ ]/), -1);
  // A flat copy: written 10 000 times into each exposition, not walked as a joined string.
  const start = ownString(`${name}${set} `);
  WRITTEN.set(labels, start);
  return start;
}

/**
 * A sample's line. Its own function, called 10 000 times an exposition: V8 optimizes it once and
 * keeps that, where the writers' loops, run once a request, would be compiled anew each time.
 */
function sampleLine(name: string, s: Sample): string {
  return `${lineStart(name, s.labels)}${formatValue(s.value)}\n`;
}

/**
 * The exposition is made in pieces of about this many characters, each encoded as soon as it is
 * made: 10 000 series rendered as one string would be a megabyte-sized object at every request,
 * one V8 keeps in its large-object space until a full collection, and pieces kept as strings
 * until the last is made would live through collections and be copied; encoded, each piece's
 * strings die young and its bytes wait outside the heap for the socket.
 */
const PIECE = 32_768;

/**
 * Where an exposition's pieces go: encoded one by one (GET /metrics), or kept as one string (a
 * push). Objects of two classes rather than a function made per request: the writers' optimized
 * code calls the same method at every request, and is not thrown away when it gets a new one.
 */
interface Sink {
  /** The characters a piece reaches before it is handed over. */
  readonly piece: number;
  add(s: string): void;
}

class Encoded implements Sink {
  readonly piece = PIECE;
  readonly body: Buffer[] = [];
  add(s: string): void {
    this.body.push(Buffer.from(s));
  }
}

class Whole implements Sink {
  // The largest small integer: a piece is never handed over before the end.
  readonly piece = 0x3fff_ffff;
  text = '';
  add(s: string): void {
    this.text = s;
  }
}

/** Writes the text format into pieces of about `sink.piece` characters. */
function writeText(families: readonly MetricSnapshot[], sink: Sink): void {
  const piece = sink.piece;
  let out = '';
  let first = true;
  for (const f of families) {
    if (!first) out += '\n';
    first = false;
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.values) {
      out += sampleLine(s.metricName ?? f.name, s);
      if (out.length >= piece) {
        sink.add(out);
        out = '';
      }
    }
  }
  if (out !== '') sink.add(out);
}

/** Writes OpenMetrics into pieces of about `sink.piece` characters. */
function writeOpenMetrics(families: readonly MetricSnapshot[], sink: Sink): void {
  const piece = sink.piece;
  let out = '';
  for (const f of families) {
    const counter = f.type === 'counter';
    const name = counter && f.name.endsWith('_total') ? f.name.slice(0, -6) : f.name;
    const type = f.type === 'untyped' ? 'unknown' : f.type;
    out += `# TYPE ${name} ${type}\n`;
    if (f.help !== '') out += `# HELP ${name} ${escapeLabel(f.help)}\n`;
    for (const s of f.values) {
      let sample = s.metricName ?? f.name;
      if (counter && sample === name) sample = `${name}_total`;
      out += sampleLine(sample, s);
      if (out.length >= piece) {
        sink.add(out);
        out = '';
      }
    }
  }
  sink.add(`${out}# EOF\n`);
}

/** In one string (what a push sends): joining pieces would copy every character twice. */
export function renderText(families: readonly MetricSnapshot[]): string {
  const whole = new Whole();
  writeText(families, whole);
  return whole.text;
}

export function renderOpenMetrics(families: readonly MetricSnapshot[]): string {
  const whole = new Whole();
  writeOpenMetrics(families, whole);
  return whole.text;
}

/** The format an Accept header asks for: OpenMetrics when it weighs at least as much as text. */
export function negotiate(accept: string | undefined): ExpositionFormat {
  if (accept === undefined || !accept.includes('openmetrics')) return 'text';
  let om = 0;
  let text = 0;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!(q >= 0)) continue;
    if (type === 'application/openmetrics-text') {
      const version = params.find((p) => p.startsWith('version='))?.slice(8);
      // 1.0.0 is what is written; 0.0.1 (its draft) reads the same text.
      if (version === undefined || version === '1.0.0' || version === '0.0.1') om = Math.max(om, q);
    } else if (type === 'text/plain' || type === '*/*' || type === 'text/*') text = Math.max(text, q);
  }
  return om > 0 && om >= text ? 'openmetrics' : 'text';
}

/** An exposition: its content type, and its text in UTF-8 pieces (see PIECE). */
export interface Exposition {
  contentType: string;
  body: readonly Buffer[];
}

export function render(families: readonly MetricSnapshot[], format: ExpositionFormat): Exposition {
  const sink = new Encoded();
  if (format === 'openmetrics') writeOpenMetrics(families, sink);
  else writeText(families, sink);
  return {
    contentType: format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE,
    body: sink.body,
  };
}

/** Answers 200 with an exposition, piece by piece (the body left out for HEAD). */
export function sendExposition(res: ServerResponse, e: Exposition, head = false): void {
  let length = 0;
  for (const piece of e.body) length += piece.length;
  res.writeHead(200, {
    'content-type': e.contentType,
    'content-length': length,
    'cache-control': 'no-store',
  });
  if (!head) for (const piece of e.body) res.write(piece);
  res.end();
}

function labelSet(labels: Readonly<Record<string, string | number>>): string {
  let set = '';
  for (const k in labels) set += `${set === '' ? '' : ','}${k}="${escapeLabel(String(labels[k]))}"`;
  return set === '' ? '' : `{${set}}`;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabel(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
