import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ESCAPED_SLASHES_FORWARD,
  ESCAPED_SLASHES_REDIRECT,
  ESCAPED_SLASHES_REJECT,
  type NormalizedTarget,
  normalizeTarget,
  PathError,
} from './path.js';

function ok(t: string, mode?: number): NormalizedTarget {
  const n = normalizeTarget(t, mode);
  assert.ok(!(n instanceof PathError), `${t}: ${n instanceof PathError ? n.reason : ''}`);
  return n;
}
const path = (t: string, mode?: number) => ok(t, mode).path;

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
  for (const t of ['/%', '/%4', '/%zz', '/a%g0', '/%%41', '/x/%2', '/%-1']) {
    const n = normalizeTarget(t);
    assert.ok(n instanceof PathError, t);
    assert.equal(n.reason, 'malformed percent-encoding in path');
  }
});

test('the query string is kept as it is', () => {
  const r = (path: string, query: string) => ({ path, query, redirect: false });
  assert.deepEqual(normalizeTarget('/a/../b?x=/../%2e&y=%zz'), r('/b', '?x=/../%2e&y=%zz'));
  assert.deepEqual(normalizeTarget('/a?'), r('/a', '?'));
  assert.deepEqual(normalizeTarget('//a?b//c'), r('/a', '?b//c'));
  assert.deepEqual(normalizeTarget('/plain?q'), r('/plain', '?q'));
  assert.deepEqual(normalizeTarget('/a?x=%00&y=%2F', ESCAPED_SLASHES_REJECT), r('/a', '?x=%00&y=%2F'));
});

test('regression: /x/%2e%2e%2fadmin was forwarded as /x/..%2Fadmin, which a backend that decodes %2F first reads as /admin', () => {
  // keep (the outbound default): the escape stays data, and the segment is not a dot segment.
  assert.equal(path('/x/%2e%2e%2fadmin'), '/x/..%2Fadmin');
  // reject (the inbound default): refused, counted as escaped_slash.
  for (const t of ['/x/%2e%2e%2fadmin', '/a%2Fb', '/a%5cb', '/a%5Cb']) {
    const n = normalizeTarget(t, ESCAPED_SLASHES_REJECT);
    assert.ok(n instanceof PathError, t);
    assert.equal(n.refusal, 'escaped_slash');
  }
  // unescape-and-forward: decoded before the dot segments go, so routing sees what the app reads.
  assert.deepEqual(ok('/x/%2e%2e%2fadmin', ESCAPED_SLASHES_FORWARD), {
    path: '/admin',
    query: '',
    redirect: false,
  });
  assert.equal(path('/a%5cb', ESCAPED_SLASHES_FORWARD), '/a/b', 'a backslash is read as a slash');
  assert.equal(path('/a%2F%2Fb', ESCAPED_SLASHES_FORWARD), '/a/b', 'then merged');
  // unescape-and-redirect: the same path, to redirect to; only when there was an escaped slash.
  assert.deepEqual(ok('/x/%2e%2e%2fadmin?q=1', ESCAPED_SLASHES_REDIRECT), {
    path: '/admin',
    query: '?q=1',
    redirect: true,
  });
  assert.deepEqual(ok('/x/../admin', ESCAPED_SLASHES_REDIRECT), {
    path: '/admin',
    query: '',
    redirect: false,
  });
  assert.equal(ok('/a?x=%2F', ESCAPED_SLASHES_REDIRECT).redirect, false, 'the query does not count');
});

test('regression: an encoded NUL in the path was forwarded; it is refused in every mode', () => {
  for (const mode of [undefined, ESCAPED_SLASHES_REJECT, ESCAPED_SLASHES_REDIRECT, ESCAPED_SLASHES_FORWARD])
    for (const t of ['/a%00', '/%00/x', '/a/%00%2e%2e']) {
      const n = normalizeTarget(t, mode);
      assert.ok(n instanceof PathError, t);
      assert.equal(n.refusal, 'nul_in_path');
    }
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
      const n = ok(t);
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
      assert.equal(path(t), reference(t), t);
    }),
    { numRuns: 2000 },
  );
});

test('property: unescape-and-forward is idempotent and leaves no encoded slash, dot segment or //', () => {
  fc.assert(
    fc.property(target, (t) => {
      const n = ok(t, ESCAPED_SLASHES_FORWARD);
      assert.deepEqual(normalizeTarget(n.path, ESCAPED_SLASHES_FORWARD), n, `not idempotent for ${t}`);
      assert.ok(!/%(2F|5C)/i.test(n.path), `${t} -> ${n.path}`);
      assert.ok(!n.path.includes('//'), `${t} -> ${n.path}`);
      for (const seg of n.path.split('/')) assert.ok(seg !== '.' && seg !== '..', `${t} -> ${n.path}`);
    }),
    { numRuns: 2000 },
  );
});
