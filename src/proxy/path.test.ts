import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { normalizeTarget } from './path.js';

const path = (t: string) => normalizeTarget(t)?.path;

test('the ways to spell /admin all normalize to /admin', () => {
  for (const t of [
    '/admin',
    '/a/../admin',
    '//admin',
    '///admin',
    '/%61dmin',
    '/%61%64%6D%69%6e',
    '/%2e%2e/admin',
    '/%2E%2E/admin',
    '/.%2e/admin',
    '/./admin',
    '/a/b/../../admin',
    '/a//..//admin',
    '/x/%2e%2e/admin',
    '/../../admin',
  ])
    assert.equal(path(t), '/admin', t);
});

test('encoded slashes and backslashes stay encoded, upper-cased; they are data, not separators', () => {
  assert.equal(path('/a%2fb'), '/a%2Fb');
  assert.equal(path('/a%2Fb'), '/a%2Fb');
  assert.equal(path('/a%5cb'), '/a%5Cb');
  assert.equal(path('/a/%2e%2e%2fadmin'), '/a/..%2Fadmin', 'not a dot segment: the %2F is part of it');
  assert.equal(path('/%2F%2Fadmin'), '/%2F%2Fadmin', 'not merged');
});

test('other reserved or non-ASCII escapes stay encoded, upper-cased', () => {
  assert.equal(path('/a%20b'), '/a%20b');
  assert.equal(path('/caf%c3%a9'), '/caf%C3%A9');
  assert.equal(path('/%25'), '/%25', 'no double decoding');
  assert.equal(path('/%252e%252e/admin'), '/%252e%252e/admin');
  assert.equal(path('/%3f'), '/%3F', 'an encoded ? is not a query');
  assert.equal(path('/%7e%41'), '/~A');
});

test('malformed percent-escapes make the target invalid', () => {
  for (const t of ['/%', '/%4', '/%zz', '/a%g0', '/%%41', '/x/%2', '/%-1'])
    assert.equal(normalizeTarget(t), undefined, t);
});

test('the query string is kept as it is', () => {
  assert.deepEqual(normalizeTarget('/a/../b?x=/../%2e&y=%zz'), { path: '/b', query: '?x=/../%2e&y=%zz' });
  assert.deepEqual(normalizeTarget('/a?'), { path: '/a', query: '?' });
  assert.deepEqual(normalizeTarget('//a?b//c'), { path: '/a', query: '?b//c' });
  assert.deepEqual(normalizeTarget('/plain?q'), { path: '/plain', query: '?q' });
});

test('trailing dot segments leave a trailing slash (RFC 3986 §5.2.4)', () => {
  assert.equal(path('/a/b/.'), '/a/b/');
  assert.equal(path('/a/b/..'), '/a/');
  assert.equal(path('/a/..'), '/');
  assert.equal(path('/..'), '/');
  assert.equal(path('/.'), '/');
  assert.equal(path('/a/b/%2e'), '/a/b/');
  assert.equal(path('/a/./'), '/a/');
  assert.equal(path('/a/b/c/./../../g'), '/a/g', 'the example in RFC 3986 §5.2.4');
  assert.equal(path('/mid/content=5/../6'), '/mid/6');
});

test('what only looks like a dot segment is left alone', () => {
  assert.equal(path('/a/.hidden'), '/a/.hidden');
  assert.equal(path('/a/...'), '/a/...');
  assert.equal(path('/a/..b/c'), '/a/..b/c');
  assert.equal(path('/a/b.'), '/a/b.');
  assert.equal(path('/a/b/'), '/a/b/');
  assert.equal(path('/'), '/');
});

// --- properties ---------------------------------------------------------------------------------

const segment = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...'abcAZ09-._~!$&()*+,;=:@'), maxLength: 6 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('.', '..', '%2e', '%2E%2e', '', '%2F', '%5c', '%41', '%7e', '%20'),
  },
);
const target = fc.array(segment, { maxLength: 8 }).map((s) => `/${s.join('/')}`);

test('property: normalizing is idempotent and leaves no dot segment, no // and no lower-case escape', () => {
  fc.assert(
    fc.property(target, (t) => {
      const n = normalizeTarget(t);
      assert.ok(n !== undefined, t);
      assert.deepEqual(normalizeTarget(n.path), n, `not idempotent for ${t}`);
      assert.ok(n.path.startsWith('/'));
      assert.ok(!n.path.includes('//'), `${t} -> ${n.path}`);
      for (const seg of n.path.split('/')) assert.ok(seg !== '.' && seg !== '..', `${t} -> ${n.path}`);
      assert.ok(!/%[0-9A-F]?[a-f]/.test(n.path), `${t} -> ${n.path}`);
      assert.ok(
        !/%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/.test(n.path),
        `unreserved left encoded: ${n.path}`,
      );
    }),
    { numRuns: 2000 },
  );
});

/** RFC 3986 §5.2.4 as the RFC writes it: a loop over an input buffer, not over segments. */
function removeDotSegmentsRfc(path: string): string {
  let input = path;
  let output = '';
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../') || input === '/..') {
      input = `/${input.slice(input === '/..' ? 3 : 4)}`;
      output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
    } else if (input === '.' || input === '..') input = '';
    else {
      const next = input.indexOf('/', 1);
      const seg = next === -1 ? input : input.slice(0, next);
      output += seg;
      input = input.slice(seg.length);
    }
  }
  return output;
}

test('property: the same path as a literal RFC 3986 §5.2.4 after decoding unreserved escapes', () => {
  const reference = (t: string) =>
    removeDotSegmentsRfc(
      t
        .replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => {
          const c = String.fromCharCode(Number.parseInt(h, 16));
          return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${h.toUpperCase()}`;
        })
        .replace(/\/{2,}/g, '/'),
    );
  fc.assert(
    fc.property(target, (t) => {
      assert.equal(normalizeTarget(t)!.path, reference(t), t);
    }),
    { numRuns: 2000 },
  );
});
