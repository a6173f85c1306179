// The `regex` parser: each named group of a user's pattern becomes a field; a record the pattern does
// not match is kept raw with `parse_error` set.

import type { Series } from '../../metrics/index.js';
import type { LogEvent } from '../types.js';

/**
 * Compiles a parser for one pattern (already validated by the config schema). Groups that did not
 * take part in the match (optional ones) are left out. A match that yields no field at all (a
 * pattern without named groups) keeps the text as `message`, so a record is never emptied.
 */
export function regexParser(pattern: string, parseErrors: Series): (text: string) => LogEvent {
  // No `g` or `y` flag: exec then keeps no lastIndex state between records.
  const re = new RegExp(pattern);
  return (text) => {
    const m = re.exec(text);
    if (m === null) {
      parseErrors.value++;
      return { message: text, parse_error: 'no match' };
    }
    const event: LogEvent = {};
    let fields = 0;
    const groups = m.groups;
    if (groups !== undefined)
      for (const name in groups) {
        const value = groups[name];
        if (value === undefined) continue;
        // Group names are identifiers, so `__proto__` is possible and must not become the prototype.
        if (name === '__proto__')
          Object.defineProperty(event, name, { value, enumerable: true, writable: true, configurable: true });
        else event[name] = value;
        fields++;
      }
    if (fields === 0) event.message = text;
    return event;
  };
}
