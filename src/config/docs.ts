// Renders the config reference (docs/config.md) from the JSON Schema, so the docs cannot drift
// from what the loader accepts; a test fails when the committed file is stale.

import type { JsonSchema } from './json-schema.js';

export function renderConfigDocs(schema: JsonSchema, intro: string): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from the schema by `npm run docs`. Do not edit by hand. -->',
    '',
    intro.trim(),
    '',
  ];
  for (const [section, sub] of Object.entries(schema.properties ?? {})) {
    out.push(`## \`${section}\``, '', sub.description ?? '', '');
    out.push('| key | type | default | description |', '|---|---|---|---|');
    rows(sub, section, out);
    out.push('');
  }
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

function rows(schema: JsonSchema, path: string, out: string[]): void {
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants) {
    variants.forEach((v, i) => {
      rows({ ...v, description: v.description ?? schema.description }, `${path} (form ${i + 1})`, out);
    });
    return;
  }
  if (schema.type === 'object' && schema.properties) {
    for (const [key, sub] of Object.entries(schema.properties)) {
      const child = `${path}.${key}`;
      out.push(row(child, sub));
      // A list's elements are under child[], a map's values (named by the user) under child.<name>.
      const values = typeof sub.additionalProperties === 'object' ? sub.additionalProperties : undefined;
      const [nested, at] =
        sub.type === 'array'
          ? [sub.items, `${child}[]`]
          : values?.properties
            ? [values, `${child}.<name>`]
            : [sub, child];
      if (nested && (nested.properties || nested.oneOf || nested.anyOf)) rows(nested, at, out);
    }
  }
}

function row(path: string, s: JsonSchema): string {
  const def = s.default === undefined ? '' : `\`${JSON.stringify(s.default)}\``;
  return `| \`${path}\` | ${typeName(s)} | ${def} | ${cell(s.description ?? '')} |`;
}

function typeName(s: JsonSchema): string {
  if (s['x-pillion-secret']) return 'secret string';
  if (s.format === 'duration') return 'duration';
  if (s.format === 'size') return 'size';
  if (s.format === 'address') return 'address';
  if (s.enum) return s.enum.map((e) => `\`${String(e)}\``).join(' \\| ');
  if (s.const !== undefined) return `\`${String(s.const)}\``;
  if (s.type === 'array') return `list of ${s.items ? typeName(s.items) : 'values'}`;
  if (s.oneOf || s.anyOf) return 'one of the forms below';
  const bounds =
    s.minimum !== undefined || s.maximum !== undefined ? ` (${s.minimum ?? ''}..${s.maximum ?? ''})` : '';
  return `${Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any')}${bounds}`;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}
