// Path normalization before routing and authorization (Envoy's normalize_path + merge_slashes):
// percent-encoded unreserved characters are decoded, other escapes upper-cased, repeated slashes
// merged and dot segments removed, so `/a/../admin`, `//admin` and `/%61dmin` are all `/admin`.
// Encoded slashes (%2F) and backslashes (%5C) stay encoded: they are data, not separators.
// The normalized form is what is routed on and what is forwarded.

export interface NormalizedTarget {
  path: string;
  /** Query string including its '?', or ''. */
  query: string;
}

const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
}

/** Returns the normalized target, or undefined when it holds a malformed percent-escape. */
export function normalizeTarget(target: string): NormalizedTarget | undefined {
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
  if (clean) return { path: rawPath, query };
  const decoded = decodeUnreserved(rawPath);
  if (decoded === undefined) return undefined;
  return { path: removeDotSegments(decoded.replace(/\/{2,}/g, '/')), query };
}

function decodeUnreserved(path: string): string | undefined {
  if (!path.includes('%')) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    const code = Number.parseInt(hex, 16);
    out += code < 128 && UNRESERVED[code] === 1 ? String.fromCharCode(code) : `%${hex.toUpperCase()}`;
    i += 2;
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
