// Path normalization before routing and authorization (Envoy's normalize_path + merge_slashes):
// percent-encoded unreserved characters are decoded, other escapes upper-cased, repeated slashes
// merged and dot segments removed, so `/a/../admin`, `//admin` and `/%61dmin` are all `/admin`.
// Encoded slashes (%2F) and backslashes (%5C) are handled as Envoy's
// path_with_escaped_slashes_action says: kept as data, refused, or decoded to `/` before the dot
// segments are removed (and then forwarded, or redirected to). An encoded NUL is refused, as nginx
// does: a backend in C may end the path there. The normalized form is what is routed on and what
// is forwarded.

import type { RefusalReason } from './stats.js';

/** pathWithEscapedSlashes, as numbers for the data path. */
export const ESCAPED_SLASHES_KEEP = 0;
export const ESCAPED_SLASHES_REJECT = 1;
export const ESCAPED_SLASHES_REDIRECT = 2;
export const ESCAPED_SLASHES_FORWARD = 3;

export const ESCAPED_SLASHES_MODES = {
  keep: ESCAPED_SLASHES_KEEP,
  reject: ESCAPED_SLASHES_REJECT,
  'unescape-and-redirect': ESCAPED_SLASHES_REDIRECT,
  'unescape-and-forward': ESCAPED_SLASHES_FORWARD,
} as const;

export interface NormalizedTarget {
  path: string;
  /** Query string including its '?', or ''. */
  query: string;
  /** unescape-and-redirect found escaped slashes: answer with a redirect to path + query. */
  redirect: boolean;
}

/** Why a target cannot be routed: answered 400. */
export class PathError {
  constructor(
    readonly reason: string,
    /** Counted in pillion_proxy_refusals_total, when the refusal is one of the hardening rules. */
    readonly refusal: RefusalReason | undefined,
  ) {}
}

const MALFORMED = new PathError('malformed percent-encoding in path', undefined);
const NUL = new PathError('an encoded NUL (%00) in the path', 'nul_in_path');
const ESCAPED_SLASH = new PathError('an encoded slash (%2F or %5C) in the path', 'escaped_slash');
const ESCAPED_SLASH_RE = /%(2f|5c)/i;

const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
}

/**
 * Returns the normalized target, or a PathError when it holds a malformed percent-escape, an
 * encoded NUL, or (with `escapedSlashes` reject) an encoded slash or backslash.
 */
export function normalizeTarget(
  target: string,
  escapedSlashes: number = ESCAPED_SLASHES_KEEP,
): NormalizedTarget | PathError {
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  // Fast path: most paths have nothing to normalize.
  let clean = true;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (
      c === 0x25 ||
      (c === 0x2f && (rawPath.charCodeAt(i + 1) === 0x2f || rawPath.charCodeAt(i + 1) === 0x2e))
    ) {
      clean = false;
      break;
    }
  }
  if (clean) return { path: rawPath, query, redirect: false };
  const decoded = decode(rawPath, escapedSlashes);
  if (decoded instanceof PathError) return decoded;
  return {
    path: removeDotSegments(decoded.replace(/\/{2,}/g, '/')),
    query,
    redirect: escapedSlashes === ESCAPED_SLASHES_REDIRECT && ESCAPED_SLASH_RE.test(rawPath),
  };
}

/** Decodes unreserved characters (and, unless kept, escaped slashes); upper-cases other escapes. */
function decode(path: string, escapedSlashes: number): string | PathError {
  if (!path.includes('%')) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return MALFORMED;
    const code = Number.parseInt(hex, 16);
    i += 2;
    if (code === 0) return NUL;
    if (code === 0x2f || code === 0x5c) {
      if (escapedSlashes === ESCAPED_SLASHES_REJECT) return ESCAPED_SLASH;
      if (escapedSlashes !== ESCAPED_SLASHES_KEEP) {
        // A backslash is a separator to enough servers that it is read as one here.
        out += '/';
        continue;
      }
    }
    out += code < 128 && UNRESERVED[code] === 1 ? String.fromCharCode(code) : `%${hex.toUpperCase()}`;
  }
  return out;
}

/** RFC 3986 §5.2.4, on a path that starts with '/'. */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '..') {
      out.pop();
      if (i === segments.length - 1) out.push('');
    } else if (s === '.') {
      if (i === segments.length - 1) out.push('');
    } else {
      out.push(s);
    }
  }
  return `/${out.join('/')}`;
}
