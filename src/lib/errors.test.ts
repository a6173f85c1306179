import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CATALOGUE, PillionError, renderErrorDocs } from './errors.js';

const docsPath = new URL('../../docs/errors.md', import.meta.url);

test('every error code is well-formed and unique', () => {
  const codes = Object.keys(ERROR_CATALOGUE);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of codes) assert.match(code, /^PILLION_ERR_[A-Z0-9]+_[A-Z0-9_]+$/, code);
  for (const def of Object.values(ERROR_CATALOGUE)) {
    assert.ok(def.description.length > 10 && def.fix.length > 3);
  }
});

test('docs/errors.md documents every code exactly once and is generated from the catalogue', () => {
  const docs = readFileSync(docsPath, 'utf8');
  assert.equal(docs, renderErrorDocs(), 'docs/errors.md is stale: run `npm run docs`');
  for (const code of Object.keys(ERROR_CATALOGUE)) {
    assert.equal(docs.split(`\`${code}\``).length - 1, 1, `${code} must appear once in docs/errors.md`);
  }
  const mentioned = new Set(docs.match(/PILLION_ERR_[A-Z0-9_]+/g));
  for (const code of mentioned)
    assert.ok(code in ERROR_CATALOGUE, `docs/errors.md names unknown code ${code}`);
});

test('every PILLION_ERR_ code used in the source is in the catalogue', async () => {
  const { readdirSync } = await import('node:fs');
  const { join } = await import('node:path');
  const srcDir = new URL('../../src', import.meta.url).pathname;
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : [],
    );
  for (const file of walk(srcDir)) {
    for (const code of readFileSync(file, 'utf8').match(/PILLION_ERR_[A-Z0-9_]+[A-Z0-9]/g) ?? []) {
      assert.ok(code in ERROR_CATALOGUE, `${file} uses ${code}, which is not in the catalogue`);
    }
  }
});

test('PillionError carries its code', () => {
  const e = new PillionError('PILLION_ERR_ADMIN_LISTEN', 'boom');
  assert.equal(e.code, 'PILLION_ERR_ADMIN_LISTEN');
  assert.ok(e instanceof Error);
});
