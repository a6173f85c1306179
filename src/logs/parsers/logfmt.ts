// The `logfmt` parser: `key=value key="quoted \"value\"" flag` as Go's go-logfmt and Heroku write it.
// Values stay strings and a bare key is `true`; text with no pair or a broken quote is kept raw.

import type { Series } from '../../metrics/index.js';
import type { LogEvent } from '../types.js';

const QUOTE = 0x22;
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;
const SPACE = 0x20;

/** Parses one record; never throws. A failure is counted on parseErrors and kept as `{ message, parse_error }`. */
export function parseLogfmt(text: string, parseErrors: Series): LogEvent {
  const event: LogEvent = {};
  const len = text.length;
  let pairs = 0;
  let i = 0;
  for (;;) {
    // As in go-logfmt, every byte up to and including space separates pairs.
    while (i < len && text.charCodeAt(i) <= SPACE) i++;
    if (i === len) break;
    const keyStart = i;
    let c = 0;
    while (i < len && (c = text.charCodeAt(i)) > SPACE && c !== EQUALS && c !== QUOTE) i++;
    if (i === keyStart) return failed(text, c === QUOTE ? 'unexpected quote' : 'missing key', parseErrors);
    if (i < len && c === QUOTE) return failed(text, 'unexpected quote', parseErrors);
    const key = text.slice(keyStart, i);
    if (i === len || c !== EQUALS) {
      setField(event, key, true);
      continue;
    }
    i++; // '='
    pairs++;
    if (i < len && text.charCodeAt(i) === QUOTE) {
      const valueStart = ++i;
      let escaped = false;
      while (i < len && (c = text.charCodeAt(i)) !== QUOTE) {
        if (c === BACKSLASH) {
          escaped = true;
          i++;
        }
        i++;
      }
      if (i >= len) return failed(text, 'unterminated quote', parseErrors);
      let value = text.slice(valueStart, i);
      i++; // closing quote
      if (i < len && text.charCodeAt(i) > SPACE)
        return failed(text, 'text after a closing quote', parseErrors);
      if (escaped) {
        const unescaped = unescape(value);
        if (unescaped === undefined) return failed(text, 'invalid escape in a quoted value', parseErrors);
        value = unescaped;
      }
      setField(event, key, value);
    } else {
      // Unlike go-logfmt, `=` may appear in a bare value (URLs, base64 padding): refusing the whole
      // line over it would lose every other field. A quote there is a broken quote.
      const valueStart = i;
      while (i < len && (c = text.charCodeAt(i)) > SPACE) {
        if (c === QUOTE) return failed(text, 'unexpected quote', parseErrors);
        i++;
      }
      setField(event, key, text.slice(valueStart, i));
    }
  }
  // A line of plain words would otherwise become a set of `word: true` fields.
  if (pairs === 0) return failed(text, 'no key=value pair', parseErrors);
  return event;
}

function setField(event: LogEvent, key: string, value: unknown): void {
  // An assignment to `__proto__` would replace the prototype instead of making a field.
  if (key === '__proto__')
    Object.defineProperty(event, key, { value, enumerable: true, writable: true, configurable: true });
  else event[key] = value;
}

/** The escapes of a JSON string (which go-logfmt decodes), with raw control characters allowed. */
function unescape(s: string): string | undefined {
  let out = '';
  let from = 0;
  for (let i = s.indexOf('\\'); i !== -1; i = s.indexOf('\\', from)) {
    out += s.slice(from, i);
    const e = s.charCodeAt(i + 1);
    from = i + 2;
    switch (e) {
      case QUOTE:
      case BACKSLASH:
      case 0x2f /* / */:
        out += String.fromCharCode(e);
        break;
      case 0x62 /* b */:
        out += '\b';
        break;
      case 0x66 /* f */:
        out += '\f';
        break;
      case 0x6e /* n */:
        out += '\n';
        break;
      case 0x72 /* r */:
        out += '\r';
        break;
      case 0x74 /* t */:
        out += '\t';
        break;
      case 0x75 /* u */: {
        const hex = s.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return undefined;
        out += String.fromCharCode(parseInt(hex, 16));
        from = i + 6;
        break;
      }
      default:
        return undefined;
    }
  }
  return out + s.slice(from);
}

function failed(text: string, reason: string, parseErrors: Series): LogEvent {
  parseErrors.value++;
  return { message: text, parse_error: reason };
}
