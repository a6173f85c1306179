// The record parsers' public surface: one compiled function per source turns a record's text into
// an event. A parser never throws and never drops: a failure keeps the text as `message`.

import type { Series } from '../../metrics/index.js';
import type { ParserConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { parseJson } from './json.js';
import { parseLogfmt } from './logfmt.js';
import { regexParser } from './regex.js';

/**
 * Compiles a source's parser once. `none` keeps the text as `message`; `json`, `logfmt` and `regex`
 * turn it into fields, and on failure return `{ message: text, parse_error: reason }` and add one
 * to `parseErrors.value`.
 */
export function compileParser(
  config: ParserConfig,
  parseErrors: Series,
  opts: { keepRaw?: boolean; lean?: readonly string[] | undefined } = {},
): (text: string) => LogEvent {
  if (typeof config === 'object') return regexParser(config.pattern, parseErrors);
  switch (config) {
    case 'json': {
      // `json` keeps each event's text when asked (see RAW in types.ts); the others make new text anyway.
      // With `lean` (the names enrich sets), events that keep their text are only that text.
      const keepRaw = opts.keepRaw === true;
      const lean = keepRaw ? opts.lean : undefined;
      return (text) => parseJson(text, parseErrors, keepRaw, lean);
    }
    case 'logfmt':
      return (text) => parseLogfmt(text, parseErrors);
    case 'none':
      return (text) => ({ message: text });
  }
}
