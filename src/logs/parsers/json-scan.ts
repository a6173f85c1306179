// A validating scan of one JSON object's text, for events that stay lean (their text only): it
// says whether JSON.parse would accept the text, and reads the top-level member names, without
// building the object. JSON.parse makes every member's string and number only for the lean event
// to drop them; at full ingest rate that was most of the pipeline's time.
//
// It follows RFC 8259's grammar exactly as JSON.parse does (a differential property test checks
// them against each other). Whatever it is not sure of — a top-level name with an escape in it,
// nesting deeper than MAX_DEPTH — it leaves to JSON.parse. (A scraped body is validated over its
// bytes by src/metrics/json-scan.ts; why the two are not one is said there.)

/** The text is not JSON (JSON.parse would throw). */
export const SCAN_INVALID = -1;
/** Valid or not, the scan cannot tell cheaply: parse it. */
export const SCAN_UNSURE = -2;
/** Valid, but two top-level members have the same name. */
export const SCAN_DUPLICATE = -3;
/** Valid, but a top-level member has one of the names asked about. */
export const SCAN_NAMED = -4;

const MAX_DEPTH = 64;
const MAX_KEYS = 256;

let s = '';
let unsure = false;
/** str() met a backslash. */
let escaped = false;
const keyStart = new Int32Array(MAX_KEYS);
const keyEnd = new Int32Array(MAX_KEYS);

/**
 * Scans text[start..end], where text[start] is `{`, text[end] is `}` and nothing but JSON
 * whitespace surrounds them. Returns the number of top-level members (0 for `{}`), or one of the
 * SCAN_ codes. `names`: member names whose presence must be known (SCAN_NAMED).
 */
export function scanObject(text: string, start: number, end: number, names: readonly string[]): number {
  s = text;
  unsure = false;
  let i = ws(start + 1);
  let n = 0;
  let keyEscaped = false;
  if (s.charCodeAt(i) === 0x7d /* } */) return i === end ? 0 : SCAN_INVALID;
  for (;;) {
    if (s.charCodeAt(i) !== 0x22 /* " */) return SCAN_INVALID;
    const k0 = i + 1;
    escaped = false;
    const after = str(i);
    if (after < 0) return SCAN_INVALID;
    if (escaped) keyEscaped = true;
    if (n === MAX_KEYS) unsure = true;
    else {
      keyStart[n] = k0;
      keyEnd[n] = after - 1;
    }
    n++;
    i = ws(after);
    if (s.charCodeAt(i) !== 0x3a /* : */) return SCAN_INVALID;
    i = value(ws(i + 1), 1);
    if (i < 0) return unsure ? SCAN_UNSURE : SCAN_INVALID;
    i = ws(i);
    const c = s.charCodeAt(i);
    if (c === 0x2c /* , */) {
      i = ws(i + 1);
      continue;
    }
    if (c !== 0x7d /* } */ || i !== end) return SCAN_INVALID;
    break;
  }
  // Names with an escape could equal others once unescaped ("a" and "\u0061"): JSON.parse decides.
  if (unsure || keyEscaped) return SCAN_UNSURE;
  for (let a = 1; a < n; a++) for (let b = 0; b < a; b++) if (sameKey(a, b)) return SCAN_DUPLICATE;
  for (const name of names) for (let k = 0; k < n; k++) if (isKey(k, name)) return SCAN_NAMED;
  return n;
}

function sameKey(a: number, b: number): boolean {
  const a0 = keyStart[a]!;
  const len = keyEnd[a]! - a0;
  const b0 = keyStart[b]!;
  if (keyEnd[b]! - b0 !== len) return false;
  for (let i = 0; i < len; i++) if (s.charCodeAt(a0 + i) !== s.charCodeAt(b0 + i)) return false;
  return true;
}

function isKey(k: number, name: string): boolean {
  const k0 = keyStart[k]!;
  if (keyEnd[k]! - k0 !== name.length) return false;
  return s.startsWith(name, k0);
}

function ws(i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
    else return i;
  }
}

/** s[i] is `"`: the index after the closing quote, or -1. */
function str(i: number): number {
  i++;
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c === 0x5c) {
      escaped = true;
      const e = s.charCodeAt(i + 1);
      if (
        e === 0x22 ||
        e === 0x5c ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      )
        i += 2;
      else if (e === 0x75 /* u */) {
        if (!(hex(i + 2) && hex(i + 3) && hex(i + 4) && hex(i + 5))) return -1;
        i += 6;
      } else return -1;
    } else if (c >= 0x20) i++;
    else return -1; // a control character, or the end of the text (NaN fails every comparison but this)
  }
}

function hex(i: number): boolean {
  const c = s.charCodeAt(i);
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function digit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** A value starting at s[i]: the index after it, or -1. */
function value(i: number, depth: number): number {
  const c = s.charCodeAt(i);
  switch (c) {
    case 0x22:
      return str(i);
    case 0x7b:
      return object(i, depth + 1);
    case 0x5b:
      return array(i, depth + 1);
    case 0x74: // true
      return s.charCodeAt(i + 1) === 0x72 && s.charCodeAt(i + 2) === 0x75 && s.charCodeAt(i + 3) === 0x65
        ? i + 4
        : -1;
    case 0x66: // false
      return s.charCodeAt(i + 1) === 0x61 &&
        s.charCodeAt(i + 2) === 0x6c &&
        s.charCodeAt(i + 3) === 0x73 &&
        s.charCodeAt(i + 4) === 0x65
        ? i + 5
        : -1;
    case 0x6e: // null
      return s.charCodeAt(i + 1) === 0x75 && s.charCodeAt(i + 2) === 0x6c && s.charCodeAt(i + 3) === 0x6c
        ? i + 4
        : -1;
    default:
      return c === 0x2d || digit(c) ? number(i) : -1;
  }
}

/** -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
function number(i: number): number {
  if (s.charCodeAt(i) === 0x2d) i++;
  let c = s.charCodeAt(i);
  if (c === 0x30) c = s.charCodeAt(++i);
  else if (digit(c)) while (digit((c = s.charCodeAt(++i))));
  else return -1;
  if (c === 0x2e /* . */) {
    if (!digit(s.charCodeAt(++i))) return -1;
    while (digit((c = s.charCodeAt(++i))));
  }
  if (c === 0x65 || c === 0x45) {
    c = s.charCodeAt(++i);
    if (c === 0x2b || c === 0x2d) c = s.charCodeAt(++i);
    if (!digit(c)) return -1;
    while (digit(s.charCodeAt(++i)));
  }
  return i;
}

function object(i: number, depth: number): number {
  if (depth > MAX_DEPTH) {
    unsure = true;
    return -1;
  }
  i = ws(i + 1);
  if (s.charCodeAt(i) === 0x7d) return i + 1;
  for (;;) {
    if (s.charCodeAt(i) !== 0x22) return -1;
    i = str(i);
    if (i < 0) return -1;
    i = ws(i);
    if (s.charCodeAt(i) !== 0x3a) return -1;
    i = value(ws(i + 1), depth);
    if (i < 0) return -1;
    i = ws(i);
    const c = s.charCodeAt(i);
    if (c === 0x7d) return i + 1;
    if (c !== 0x2c) return -1;
    i = ws(i + 1);
  }
}

function array(i: number, depth: number): number {
  if (depth > MAX_DEPTH) {
    unsure = true;
    return -1;
  }
  i = ws(i + 1);
  if (s.charCodeAt(i) === 0x5d) return i + 1;
  for (;;) {
    i = value(i, depth);
    if (i < 0) return -1;
    i = ws(i);
    const c = s.charCodeAt(i);
    if (c === 0x5d) return i + 1;
    if (c !== 0x2c) return -1;
    i = ws(i + 1);
  }
}
