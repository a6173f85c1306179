// The `json` parser: a record that is one JSON object becomes its fields; anything else is kept raw
// with `parse_error` set. It runs once per line at full ingest rate, so it rejects cheaply first.

import type { Series } from '../../metrics/index.js';
import { type LogEvent, leanEvent, setRaw } from '../types.js';
import { SCAN_INVALID, scanObject } from './json-scan.js';

/**
 * Parses one record; never throws. A failure is counted on parseErrors and kept as
 * `{ message, parse_error }`. With `keepRaw`, an object of one line whose keys are all distinct
 * keeps its text (see RAW in types.ts). With `lean` too, such an event is only its text (see
 * leanEvent in types.ts), unless it has one of the names in `lean` (the fields enrich will set,
 * which must see them). A lean event is not parsed at all, only scanned (json-scan.ts): the scan
 * tells valid JSON from invalid as JSON.parse does, without making the object the event drops.
 */
export function parseJson(
  text: string,
  parseErrors: Series,
  keepRaw = false,
  lean?: readonly string[],
): LogEvent {
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
  if (lean !== undefined && keepRaw) {
    const members = scanObject(text, start, end, lean);
    if (members > 0 && text.indexOf('\n') === -1 && text.indexOf('\r') === -1)
      return leanEvent(text.slice(start, end));
    if (members === SCAN_INVALID) return failed(text, 'invalid JSON', parseErrors);
    // `{}`, a repeated or an enriched name, or a text the scan leaves to JSON.parse: parsed below.
  }
  let event: LogEvent;
  try {
    // Text that starts with `{` and parses is an object, never an array, null or a scalar.
    event = JSON.parse(text) as LogEvent;
  } catch {
    return failed(text, 'invalid JSON', parseErrors);
  }
  if (keepRaw && text.indexOf('\n') === -1 && text.indexOf('\r') === -1) {
    // JSON.parse keeps the last of duplicate keys; the text would carry both, which ClickHouse
    // and Elasticsearch refuse. So the text is kept only when it has as many members as the object.
    let keys = 0;
    for (const _ in event) keys++;
    if (keys > 0 && memberCount(text, start, end) === keys) {
      if (lean !== undefined && !hasAny(event, lean)) return leanEvent(text.slice(start, end));
      setRaw(event, text.slice(start, end));
    }
  }
  return event;
}

/**
 * The number of members of the valid JSON object text[start..end] (`{` at start, `}` at end): its
 * top-level commas plus one. Strings are skipped with indexOf, so the cost is per token, not per
 * character of text.
 */
export function memberCount(text: string, start: number, end: number): number {
  let depth = 0;
  let commas = 0;
  let any = false;
  for (let i = start + 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      any = true;
      for (;;) {
        const q = text.indexOf('"', i + 1);
        if (q === -1 || q >= end) return -1;
        let b = q - 1;
        while (text.charCodeAt(b) === 0x5c /* \ */) b--;
        i = q;
        if ((q - 1 - b) % 2 === 0) break;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
    else if (c === 0x2c /* , */ && depth === 0) commas++;
  }
  return any ? commas + 1 : 0;
}

function hasAny(event: LogEvent, names: readonly string[]): boolean {
  for (const n of names) if (Object.hasOwn(event, n)) return true;
  return false;
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function failed(text: string, reason: string, parseErrors: Series): LogEvent {
  parseErrors.value++;
  return { message: text, parse_error: reason };
}
