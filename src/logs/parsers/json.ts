// The `json` parser: a record that is one JSON object becomes its fields; anything else is kept raw
// with `parse_error` set. It runs once per line at full ingest rate, so it rejects cheaply first.

import type { Series } from '../../metrics/index.js';
import type { LogEvent } from '../types.js';

/** Parses one record; never throws. A failure is counted on parseErrors and kept as `{ message, parse_error }`. */
export function parseJson(text: string, parseErrors: Series): LogEvent {
  // A thrown SyntaxError costs far more than a parse, so look at both ends before trying: an object
  // starts with `{` and ends with `}` once JSON's own whitespace is skipped.
  const len = text.length;
  let start = 0;
  while (start < len && isJsonSpace(text.charCodeAt(start))) start++;
  if (start === len) return failed(text, 'empty line', parseErrors);
  let end = len - 1;
  while (end > start && isJsonSpace(text.charCodeAt(end))) end--;
  if (text.charCodeAt(start) !== 0x7b /* { */ || text.charCodeAt(end) !== 0x7d /* } */)
    return failed(text, 'not a JSON object', parseErrors);
  try {
    // Text that starts with `{` and parses is an object, never an array, null or a scalar.
    return JSON.parse(text) as LogEvent;
  } catch {
    return failed(text, 'invalid JSON', parseErrors);
  }
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function failed(text: string, reason: string, parseErrors: Series): LogEvent {
  parseErrors.value++;
  return { message: text, parse_error: reason };
}
