// Durations in config are strings with units ("250ms", "2s", "1m30s"), never bare numbers, so
// "timeout: 5" cannot mean seconds to one reader and milliseconds to another.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const TERM = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Parses "250ms", "2s", "1.5s", "1m", "1h", "1m30s" into milliseconds (rounded to whole ms). */
export function parseDuration(text: string): ParseResult<number> {
  const input = text.trim();
  if (input === '') return { ok: false, reason: 'empty duration' };
  if (/^\d+(\.\d+)?$/.test(input)) {
    return { ok: false, reason: `"${input}" has no unit` };
  }
  let total = 0;
  let pos = 0;
  let last = Number.POSITIVE_INFINITY;
  while (pos < input.length) {
    TERM.lastIndex = pos;
    const m = TERM.exec(input);
    if (!m) return { ok: false, reason: `"${input}" is not a duration` };
    const scale = UNIT_MS[m[2]!]!;
    if (scale >= last) return { ok: false, reason: `"${input}" repeats a unit or lists units out of order` };
    last = scale;
    total += Number(m[1]) * scale;
    pos = TERM.lastIndex;
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) {
    return { ok: false, reason: `"${input}" is too long` };
  }
  return { ok: true, value: Math.round(total) };
}

/** Formats milliseconds the way a person would write them in config. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
