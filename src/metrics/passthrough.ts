// The app's Prometheus text (or OpenMetrics) passed through, its series kept from one scrape to
// the next by their text (the name and the label block as the app writes them). A series seen
// before has its value read and set, nothing else: its labels were checked, enriched and
// relabeled, and its exposition line written, when it first appeared. 10 000 series scraped
// again make no new objects, where making them cost most of a scrape in garbage collection.

import { Interner, ownString } from '../lib/own-string.js';
import { parseSample, readValue, sampleName, type TextFamily, TextReader } from './prom-text.js';
import type { RelabelRule } from './config.js';
import type { MetricSnapshot, Sample } from './registry.js';
import { compilePlan, enrichedLabels, type FamilyPlan, renamedSample } from './relabel.js';

export type PassthroughSkip = 'duplicate' | 'label_too_long' | 'name_collision';

export interface PassthroughOptions {
  relabel: readonly RelabelRule[];
  /** The enrichment labels, computed once. */
  labels: readonly (readonly [string, string])[];
  maxLabelValueLength: number;
  /** Whether a family of this name is pillion's own: the app's is then exposed as app_NAME. */
  ownsName: (name: string) => boolean;
  skip: (reason: PassthroughSkip, family: string, detail: string) => void;
}

/** A family's exposure as worked out for a scrape: its plan, and its name clear of pillion's. */
interface Exposure {
  /** The name the relabeling gives (undefined: dropped). */
  relabeled: string | undefined;
  /** The name it is exposed with: app_NAME when pillion owns the relabeled name. */
  name: string | undefined;
  edits: FamilyPlan['edits'];
  /** The scrape this was last checked in (pillion's names may be registered later). */
  checked: number;
}

interface Kept {
  /** Undefined when its family is dropped by the relabeling (the line is still checked). */
  sample: Sample | undefined;
  sampleName: string;
  family: string;
  type: string;
  exposure: Exposure;
  /** The scrape it was last seen in. */
  seen: number;
}

/** A scrape being read: its reader, its families' samples, the piece of text being read. */
interface Reading {
  reader: TextReader;
  values: Map<TextFamily, Sample[]>;
  text: string;
}

export class TextPassthrough {
  #o: PassthroughOptions;
  #plan: (name: string) => FamilyPlan;
  #names: ReadonlySet<string>;
  #kept = new Map<string, Kept>();
  #exposures = new Map<string, Exposure>();
  /** Names kept across scrapes (families', samples'), and short label values, one copy each. */
  #interned = new Interner();
  #scrape = 0;

  constructor(options: PassthroughOptions) {
    this.#o = options;
    this.#plan = compilePlan(options.relabel);
    this.#names = new Set(options.labels.map(([n]) => n));
  }

  /** Series kept for the next scrape. */
  get kept(): number {
    return this.#kept.size;
  }

  /** After a failed scrape: nothing is kept, the next one reads every series anew. */
  forget(): void {
    this.#kept.clear();
  }

  /**
   * The families of a document (one string, or pieces of whole lines), enriched and relabeled.
   * Throws TextFormatError.
   */
  read(document: string | readonly string[]): MetricSnapshot[] {
    const scrape = ++this.#scrape;
    const reader = new TextReader();
    const values = new Map<TextFamily, Sample[]>();
    const read: Reading = { reader, values, text: '' };
    this.#read = read;
    for (const piece of typeof document === 'string' ? [document] : document) {
      read.text = piece;
      if (!reader.read(piece, this.#onSample)) break;
    }
    // Not kept till the next scrape.
    this.#read = undefined;
    // A series absent from this document is not kept: it disappears from the exposition.
    // (forEach: iterating entries would make a pair for each of 10 000 series.)
    this.#kept.forEach((v, k, kept) => {
      if (v.seen !== scrape) kept.delete(k);
    });
    const out: MetricSnapshot[] = [];
    for (const f of reader.families.values()) {
      const list = values.get(f);
      if (list === undefined) continue;
      const e = this.#exposure(f, scrape);
      if (e.name !== e.relabeled)
        this.#o.skip(
          'name_collision',
          e.relabeled!,
          `renamed ${e.name}: pillion exposes ${e.relabeled} itself`,
        );
      out.push({ name: e.name!, help: this.#intern(f.help), type: f.type, values: list });
    }
    return out;
  }

  /** The scrape being read. */
  #read: Reading | undefined;
  /** One function for every scrape: the reader's optimized code calls the same one each time. */
  readonly #onSample = (start: number, end: number, lineNo: number): void => this.#sample(start, end, lineNo);

  /** A sample line, text[start, end). */
  #sample(start: number, end: number, lineNo: number): void {
    const { text, reader } = this.#read!;
    const scrape = this.#scrape;
    const candidate = seriesEnd(text, start, end);
    let key = candidate > start ? text.slice(start, candidate) : undefined;
    let kept = key === undefined ? undefined : this.#kept.get(key);
    if (kept !== undefined) {
      // A series text seen before: its value is all that is read. (A complete series text is
      // parsed the same whatever follows it, so the lookup is exact.)
      const f = reader.take(kept.sampleName);
      if (this.#current(kept, f, scrape)) {
        this.#again(kept, f, scrape, readValue(text, candidate, end, lineNo, kept.sampleName));
        return;
      }
    }
    const s = parseSample(text, start, end, lineNo);
    const f = reader.take(s.name);
    if (s.seriesEnd !== candidate) {
      // The text holds "} " in a label value: looked up by its whole series text.
      key = text.slice(start, s.seriesEnd);
      kept = this.#kept.get(key);
      if (kept !== undefined && this.#current(kept, f, scrape)) return this.#again(kept, f, scrape, s.value);
    }
    for (const k in s.labels) {
      const len = s.labels[k]!.length;
      if (len > this.#o.maxLabelValueLength) {
        this.#o.skip(
          'label_too_long',
          f.exposed,
          `label ${k} is ${len} characters, over ${this.#o.maxLabelValueLength}`,
        );
        return;
      }
    }
    const exposure = this.#exposure(f, scrape);
    let sample: Sample | undefined;
    if (exposure.name !== undefined) {
      // Kept for later scrapes: the strings get their own characters, not views into the body.
      for (const k in s.labels) s.labels[k] = this.#interned.labelValue(s.labels[k]!);
      const labels = enrichedLabels(s.labels, this.#o.labels, this.#names);
      for (const e of exposure.edits) e(labels);
      const own = sampleName(f, s.name);
      sample =
        own === undefined
          ? { labels, value: s.value }
          : { labels, value: s.value, metricName: this.#intern(this.#sampleName(own, f, exposure)) };
      this.#push(f, sample);
    }
    this.#kept.set(ownString(key!), {
      sample,
      sampleName: this.#intern(s.name),
      family: this.#intern(f.name),
      type: f.type,
      exposure,
      seen: scrape,
    });
  }

  #push(f: TextFamily, s: Sample): void {
    const values = this.#read!.values;
    const list = values.get(f);
    if (list) list.push(s);
    else values.set(f, [s]);
  }

  /** Whether a kept series is still one of family f as it is exposed now. */
  #current(kept: Kept, f: TextFamily, scrape: number): boolean {
    return kept.family === f.name && kept.type === f.type && kept.exposure === this.#exposure(f, scrape);
  }

  /** A kept series seen again: its new value, or a duplicate when it was seen in this scrape. */
  #again(kept: Kept, f: TextFamily, scrape: number, value: number): void {
    if (kept.seen === scrape) {
      if (kept.sample !== undefined) this.#duplicate(f);
      return;
    }
    kept.seen = scrape;
    if (kept.sample !== undefined) {
      kept.sample.value = value;
      this.#push(f, kept.sample);
    }
  }

  #duplicate(f: TextFamily): void {
    this.#o.skip('duplicate', f.exposed, 'the same series twice in one scrape; the first is kept');
  }

  /** The family's exposure, the same object while nothing changes (kept series check it). */
  #exposure(f: TextFamily, scrape: number): Exposure {
    let e = this.#exposures.get(f.exposed);
    if (e !== undefined && e.checked === scrape) return e;
    const plan = e ?? this.#plan(f.exposed);
    const relabeled = e === undefined ? plan.name : e.relabeled;
    const name =
      relabeled === undefined ? undefined : this.#o.ownsName(relabeled) ? `app_${relabeled}` : relabeled;
    if (e !== undefined && e.name === name) {
      e.checked = scrape;
      return e;
    }
    if (this.#exposures.size >= 100_000) this.#exposures.clear();
    e = {
      relabeled: relabeled === undefined ? undefined : this.#intern(relabeled),
      name: name === undefined ? undefined : this.#intern(name),
      edits: plan.edits,
      checked: scrape,
    };
    this.#exposures.set(this.#intern(f.exposed), e);
    return e;
  }

  /** The kept copy of a name: the same string for every series of a family, from scrape to scrape. */
  #intern(name: string): string {
    return this.#interned.intern(name);
  }

  #sampleName(own: string, f: TextFamily, e: Exposure): string {
    if (e.name === f.exposed) return own;
    let name = e.relabeled === f.exposed ? own : renamedSample(own, f.exposed, e.relabeled!);
    if (e.name !== e.relabeled) name = `app_${name}`;
    return name;
  }
}

/**
 * Where the series text of a sample line would end if it is one seen before: after the name, or
 * after the first } followed by a space. A label value holding "} " makes this end early; such a
 * text is no complete series text, is never kept, and the line is parsed in full.
 */
function seriesEnd(text: string, start: number, end: number): number {
  let i = start;
  let c = 0;
  while (i < end && (c = text.charCodeAt(i)) !== 123 /* { */ && c !== 32 && c !== 9) i++;
  if (c !== 123) return i;
  for (;;) {
    i = text.indexOf('}', i + 1);
    if (i === -1 || i >= end) return -1;
    c = text.charCodeAt(i + 1);
    if (c === 32 || c === 9) return i + 1;
  }
}
