// Prometheus's text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): a HELP and a TYPE line per
// family, then one line per sample; help text escapes backslash and newline, label values also
// the double quote; values are Go-style floats (NaN, +Inf, -Inf).

import type { MetricSnapshot } from './registry.js';

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function renderText(families: readonly MetricSnapshot[]): string {
  const blocks: string[] = [];
  for (const f of families) {
    const lines = [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`];
    for (const s of f.values) {
      const labels = Object.entries(s.labels);
      const set =
        labels.length === 0
          ? ''
          : `{${labels.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',')}}`;
      lines.push(`${s.metricName ?? f.name}${set} ${formatValue(s.value)}`);
    }
    blocks.push(lines.join('\n'));
  }
  return blocks.length === 0 ? '' : `${blocks.join('\n\n')}\n`;
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

function escapeLabel(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
