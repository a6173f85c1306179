// What happens to the app's families after they are read: enrichment labels added (a label the
// app has already is kept as exported_NAME, Prometheus's honor_labels: false), relabeling steps
// in order (keep, drop, rename, addLabel, dropLabel), each compiled once at config load.

import type { RelabelRule } from './config.js';
import type { MetricSnapshot, Sample } from './registry.js';

export type Step = (families: MetricSnapshot[]) => MetricSnapshot[];

export function compileRelabel(rules: readonly RelabelRule[]): Step {
  const steps = rules.map(compileStep);
  return (families) => {
    let out = families;
    for (const s of steps) out = s(out);
    return out;
  };
}

function compileStep(r: RelabelRule): Step {
  const re = r.name === undefined ? undefined : new RegExp(`^(?:${r.name})$`);
  const applies = (name: string) => re === undefined || re.test(name);
  switch (r.action) {
    case 'keep':
      return (fs) => fs.filter((f) => applies(f.name));
    case 'drop':
      return (fs) => fs.filter((f) => !applies(f.name));
    case 'rename': {
      const to = r.to!;
      return (fs) =>
        fs.map((f) => {
          if (!applies(f.name)) return f;
          const name = f.name.replace(re!, to);
          // Histogram and summary lines keep their suffix on the new name.
          const values = f.values.map((v) =>
            v.metricName === undefined ? v : { ...v, metricName: name + v.metricName.slice(f.name.length) },
          );
          return { ...f, name, values };
        });
    }
    case 'addLabel': {
      const label = r.label!;
      const value = r.value!;
      // In place: the families are the scrape's own, made for this scrape.
      return (fs) => {
        for (const f of fs)
          if (applies(f.name)) for (const v of f.values) (v.labels as Record<string, string>)[label] = value;
        return fs;
      };
    }
    case 'dropLabel': {
      const label = r.label!;
      return (fs) => {
        for (const f of fs)
          if (applies(f.name)) for (const v of f.values) delete (v.labels as Record<string, string>)[label];
        return fs;
      };
    }
  }
}

/** Adds the enrichment labels to every sample, in place (the families are the scrape's own). */
export function enrich(families: MetricSnapshot[], labels: readonly (readonly [string, string])[]): void {
  if (labels.length === 0) return;
  // Objects made with the labels in one go, not copied sample by sample: V8 keeps one shape.
  const names = new Set(labels.map(([name]) => name));
  for (const f of families) {
    const values = f.values as Sample[];
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const out: Record<string, string | number> = {};
      for (const k in v.labels) {
        out[names.has(k) ? `exported_${k}` : k] = v.labels[k]!;
      }
      for (const [name, value] of labels) out[name] = value;
      values[i] = v.metricName === undefined ? { labels: out, value: v.value } : { ...v, labels: out };
    }
  }
}
