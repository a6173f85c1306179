// The one JSON encoder of events for sinks, dead letters and the disk buffer: an event's own JSON
// text when it still has it (see RAW in types.ts), else plain JSON.stringify, and only when that
// throws (a BigInt, a cycle) a lenient second pass.

import { type LogEvent, rawOf } from '../types.js';

/**
 * Events as JSON lines (each one's encodeEvent text and a newline) in one Buffer. Each text is
 * written into the buffer as it comes: joining ten thousand texts that are slices of their lines
 * with enrich's fields appended into one string first took several times as long.
 */
export function encodeLines(events: readonly unknown[]): Buffer {
  const n = events.length;
  const texts = new Array<string>(n);
  const closes = new Uint8Array(n);
  let chars = 0;
  for (let i = 0; i < n; i++) {
    const e = events[i];
    const open = typeof e === 'object' && e !== null ? rawOf(e as LogEvent) : undefined;
    if (open !== undefined) {
      texts[i] = open;
      closes[i] = 1;
      chars += open.length + 2;
    } else {
      const t = encodeEvent(e);
      texts[i] = t;
      chars += t.length + 1;
    }
  }
  // Room for ASCII and a little more; a text that might not fit is measured, and the buffer grown.
  let buf = Buffer.allocUnsafe(chars + (chars >> 3) + 64);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const t = texts[i]!;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; only a text that might not fit is measured.
    const room = buf.length - off - 2;
    if (room < 3 * t.length) {
      const bytes = Buffer.byteLength(t);
      if (bytes > room) {
        const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, off + bytes + 64));
        buf.copy(bigger, 0, 0, off);
        buf = bigger;
      }
    }
    off += buf.write(t, off);
    if (closes[i] === 1) buf[off++] = 0x7d; // }
    buf[off++] = 0x0a;
  }
  return buf.subarray(0, off);
}

/**
 * JSON text of an event that never throws: a BigInt is written as its decimal string, an object
 * met a second time (a cycle, or one object under two keys) as "[Circular]", and what even that cannot encode (a throwing toJSON or
 * getter) as `{"message": String(value), "parse_error": ...}`. A sink that let JSON.stringify
 * throw would fail the batch on every retry and never get past it.
 */
export function encodeEvent(event: unknown): string {
  const raw = rawText(event);
  if (raw !== undefined) return raw;
  try {
    return JSON.stringify(event) ?? 'null';
  } catch {
    return encodeLoosely(event);
  }
}

/**
 * JSON text of an event, or undefined when JSON cannot encode it: for sinks that hand such an
 * event to the dead letters rather than send an altered copy.
 */
export function encodeEventStrict(event: unknown): string | undefined {
  const raw = rawText(event);
  if (raw !== undefined) return raw;
  try {
    return JSON.stringify(event) as string | undefined;
  } catch {
    return undefined;
  }
}

function rawText(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const open = rawOf(event as LogEvent);
  return open === undefined ? undefined : `${open}}`;
}

function encodeLoosely(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, (_k, v: unknown) => {
        if (typeof v === 'bigint') return v.toString();
        if (typeof v === 'object' && v !== null) {
          if (seen.has(v)) return '[Circular]';
          seen.add(v);
        }
        return v;
      }) ?? 'null'
    );
  } catch (err) {
    return JSON.stringify({ message: text(value), parse_error: `not serializable: ${text(err)}` });
  }
}

/** String(v), which itself throws for an object without a prototype or with a throwing toString. */
function text(v: unknown): string {
  try {
    return String(v);
  } catch {
    return '[unprintable]';
  }
}
