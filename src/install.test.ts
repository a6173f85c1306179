// `npm ci` on a fresh machine with the documented Node is clean: no locked package (devDependencies
// included) asks for a newer Node than package.json's engines promise (cookie@2.0.2 wanted 22, via
// fastify's light-my-request), and every install script is decided in allowScripts.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const root = new URL('../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  allowScripts?: Record<string, boolean>;
};
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[]; hasInstallScript?: boolean }>;
};

type Version = [number, number, number];

function parse(text: string): (number | undefined)[] {
  return text
    .replace(/^v/, '')
    .split('.')
    .map((p) => (p === '' || p === 'x' || p === 'X' || p === '*' ? undefined : Number(p)));
}

function cmp(a: Version, b: (number | undefined)[]): number {
  for (let i = 0; i < 3; i++) {
    const d = a[i]! - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Whether a version satisfies an npm range, in the forms that `engines` fields use. */
function satisfies(version: string, range: string): boolean {
  const given = parse(version);
  const v: Version = [given[0] ?? 0, given[1] ?? 0, given[2] ?? 0];
  return range.split('||').some((set) =>
    set
      .trim()
      .replace(/([<>=^~]+)\s+/g, '$1')
      .split(/\s+/)
      .every((c) => {
        const m = /^(>=|<=|>|<|\^|~|=)?(.*)$/.exec(c)!;
        const op = m[1] ?? '';
        const want = parse(m[2]!);
        if (m[2] === '' || m[2] === '*') return true;
        if (op === '>=') return cmp(v, want) >= 0;
        if (op === '>') return cmp(v, want) > 0;
        if (op === '<=') return cmp(v, want) <= 0;
        if (op === '<') return cmp(v, want) < 0;
        if (op === '^') return v[0] === want[0] && cmp(v, want) >= 0;
        if (op === '~') return v[0] === want[0] && v[1] === (want[1] ?? v[1]) && cmp(v, want) >= 0;
        // A plain (partial) version: every part given must be equal.
        return want.every((p, i) => p === undefined || p === v[i]);
      }),
  );
}

test('the engines range reader', () => {
  assert.ok(satisfies('20.19.0', '^20.19.0 || ^22.13.0 || >=24'));
  assert.ok(!satisfies('20.18.0', '^20.19.0 || ^22.13.0 || >=24'));
  assert.ok(!satisfies('20.19.0', '>=22'));
  assert.ok(satisfies('20.19.0', '18 || 20 || >=22'));
  assert.ok(satisfies('20.19.0', '6.* || 8.* || >= 10.*'));
  assert.ok(satisfies('20.19.0', '>= 10.x'));
  assert.ok(satisfies('20.19.0', '*'));
  assert.ok(!satisfies('21.0.0', '^18.18.0 || ^20.9.0 || >=21.1.0'));
});

test('regression: every locked package runs on the oldest Node that package.json promises, and on this one', () => {
  const oldest = /^>=\s*(\d+(\.\d+){0,2})$/.exec(pkg.engines.node)?.[1];
  assert.ok(oldest, `engines.node is a plain lower bound: ${pkg.engines.node}`);
  const refuse = (v: string) =>
    Object.entries(lock.packages)
      .filter(([name, p]) => name !== '' && !Array.isArray(p.engines) && p.engines?.node !== undefined)
      .filter(([, p]) => !satisfies(v, (p.engines as { node: string }).node))
      .map(
        ([name, p]) =>
          `${name.replace(/^node_modules\//, '')} wants node ${(p.engines as { node: string }).node}`,
      );
  assert.deepEqual(refuse(oldest!), [], `Node ${oldest}`);
  assert.deepEqual(refuse(process.versions.node), [], `Node ${process.versions.node}`);
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  assert.ok(readme.includes(`Node.js ${oldest} or newer`), 'the README names the same Node version');
});

test('every install script in the tree is decided in allowScripts (npm ci prints no advisory)', () => {
  const scripted = Object.entries(lock.packages)
    .filter(([, p]) => p.hasInstallScript)
    .map(([name]) => name.replace(/^.*node_modules\//, ''));
  for (const name of scripted) assert.equal(typeof pkg.allowScripts?.[name], 'boolean', name);
});
