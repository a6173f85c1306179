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
      return (fs) =>
        fs.map((f) =>
          applies(f.name)
            ? { ...f, values: f.values.map((v) => ({ ...v, labels: { ...v.labels, [label]: value } })) }
            : f,
        );
    }
    case 'dropLabel': {
      const label = r.label!;
      return (fs) =>
        fs.map((f) =>
          applies(f.name)
            ? {
                ...f,
                values: f.values.map((v) => {
                  if (!Object.hasOwn(v.labels, label)) return v;
                  const labels = { ...v.labels };
                  delete labels[label];
                  return { ...v, labels };
                }),
              }
            : f,
        );
    }
  }
}

/** Adds the enrichment labels to every sample, in place (the families are the scrape's own). */
export function enrich(families: MetricSnapshot[], labels: readonly (readonly [string, string])[]): void {
  if (labels.length === 0) return;
  for (const f of families) {
    const values = f.values as Sample[];
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const out: Record<string, string | number> = {};
      for (const k in v.labels) {
        const clash = labels.some(([name]) => name === k);
        out[clash ? `exported_${k}` : k] = v.labels[k]!;
      }
      for (const [name, value] of labels) out[name] = value;
      values[i] = v.metricName === undefined ? { labels: out, value: v.value } : { ...v, labels: out };
    }
  }
}
