// What happens to the app's families after they are read: enrichment labels added (a label the
// app has already is kept as exported_NAME, Prometheus's honor_labels: false), relabeling steps
// in order (keep, drop, rename, addLabel, dropLabel), each compiled once at config load.

import type { RelabelRule } from './config.js';
import type { MetricSnapshot } from './registry.js';

export type Step = (families: MetricSnapshot[]) => MetricSnapshot[];

type Labels = Record<string, string | number>;

/** What the steps do to a family of one name: its new name (undefined: dropped) and label edits. */
export interface FamilyPlan {
  name: string | undefined;
  edits: readonly ((labels: Labels) => void)[];
}

/**
 * The steps compiled into one function of a family's name: they depend on nothing else, so a
 * family's plan is worked out once and applied to each new series.
 */
export function compilePlan(rules: readonly RelabelRule[]): (name: string) => FamilyPlan {
  const steps = rules.map((r) => ({
    r,
    re: r.name === undefined ? undefined : new RegExp(`^(?:${r.name})$`),
  }));
  return (from) => {
    let name = from;
    const edits: ((labels: Labels) => void)[] = [];
    for (const { r, re } of steps) {
      const applies = re === undefined || re.test(name);
      switch (r.action) {
        case 'keep':
          if (!applies) return { name: undefined, edits: [] };
          break;
        case 'drop':
          if (applies) return { name: undefined, edits: [] };
          break;
        case 'rename':
          if (applies) name = name.replace(re!, r.to!);
          break;
        case 'addLabel': {
          const label = r.label!;
          const value = r.value!;
          if (applies) edits.push((l) => (l[label] = value));
          break;
        }
        case 'dropLabel': {
          const label = r.label!;
          if (applies) edits.push((l) => delete l[label]);
          break;
        }
      }
    }
    return { name, edits };
  };
}

/** The relabeling of whole families (JSON-mapped ones), label edits made in place. */
export function compileRelabel(rules: readonly RelabelRule[]): Step {
  if (rules.length === 0) return (fs) => fs;
  const plan = compilePlan(rules);
  return (families) => {
    const out: MetricSnapshot[] = [];
    for (const f of families) {
      const p = plan(f.name);
      if (p.name === undefined) continue;
      // In place: the samples are the scrape's own (edits set the same values again when kept).
      for (const v of f.values) for (const e of p.edits) e(v.labels);
      if (p.name === f.name) out.push(f);
      else {
        const name = p.name;
        const values = f.values.map((v) =>
          v.metricName === undefined ? v : { ...v, metricName: renamedSample(v.metricName, f.name, name) },
        );
        out.push({ ...f, name, values });
      }
    }
    return out;
  };
}

/**
 * A sample's own name (a histogram's _bucket, a counter's _created) when its family `from` is
 * exposed as `to`: the suffix is kept, read against the family's name without _total for a
 * counter named with it.
 */
export function renamedSample(sample: string, from: string, to: string): string {
  if (sample.startsWith(from)) return to + sample.slice(from.length);
  if (from.endsWith('_total') && sample.startsWith(from.slice(0, -6)))
    return (to.endsWith('_total') ? to.slice(0, -6) : to) + sample.slice(from.length - 6);
  return sample;
}

/** The labels of one series with the enrichment added (in a new object: V8 keeps one shape). */
export function enrichedLabels(
  labels: Readonly<Labels>,
  enrichment: readonly (readonly [string, string])[],
  names: ReadonlySet<string>,
): Record<string, string | number> {
  const out: Labels = {};
  for (const k in labels) out[names.has(k) ? `exported_${k}` : k] = labels[k]!;
  for (const [name, value] of enrichment) out[name] = value;
  return out;
}
