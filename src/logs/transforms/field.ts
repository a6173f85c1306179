// Reading and writing an event's top-level fields by name. Events parsed from JSON inherit from
// Object.prototype, so a name such as `constructor` or `__proto__` needs care to stay a plain field.

import type { LogEvent } from '../types.js';

/** The event's own field (undefined when absent), never an inherited property. */
export function getField(event: LogEvent, name: string): unknown {
  return Object.hasOwn(event, name) ? event[name] : undefined;
}

/** Sets a field; `__proto__` becomes an ordinary field instead of replacing the prototype. */
export function setField(event: LogEvent, name: string, value: unknown): void {
  if (name === '__proto__')
    Object.defineProperty(event, name, { value, enumerable: true, writable: true, configurable: true });
  else event[name] = value;
}

/**
 * A field's value as text, as String() gives it. An object parsed from JSON can carry its own
 * `toString` field, on which String() throws; such a value reads as `[object Object]`.
 */
export function fieldText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return String(value);
  } catch {
    return '[object Object]';
  }
}
