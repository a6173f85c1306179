// The `timestamp` transform: reads a time from a field in one of a few formats and writes it to the
// target as RFC 3339 UTC with milliseconds; a time it cannot read sets `timestamp_error` instead.

import type { TransformConfig } from '../config.js';
import { getField, setField } from './field.js';
import type { TransformChain } from './index.js';

type TimestampConfig = Extract<TransformConfig, { type: 'timestamp' }>;
type Format = TimestampConfig['format'];

/** Set to the reason when the field could not be read as a time. */
export const TIMESTAMP_ERROR = 'timestamp_error';

// toISOString() writes years past 9999 as `+010000-...`, which is not RFC 3339.
const MIN_MS = -62_167_219_200_000; // 0000-01-01T00:00:00Z
const MAX_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
// ISO 8601 as `auto` takes it: seconds optional, `,` decimals, offsets `+hh`, `+hhmm`, or none (UTC).
const ISO8601 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/;
const COMMON_LOG = /^\[?(\d{1,2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\]?$/;
const NUMBER = /^\s*-?\d+(?:\.\d+)?\s*$/;
const MONTHS: Record<string, number> = {
  Jan: 1,
  Feb: 2,
  Mar: 3,
  Apr: 4,
  May: 5,
  Jun: 6,
  Jul: 7,
  Aug: 8,
  Sep: 9,
  Oct: 10,
  Nov: 11,
  Dec: 12,
};

/**
 * `auto` reads numbers (and numeric text) by magnitude: below 1e11 seconds, below 1e14
 * milliseconds, below 1e17 microseconds, else nanoseconds (each covers dates up to the year 5138).
 * A date-time without an offset is taken as UTC.
 */
export function compileTimestamp(config: TimestampConfig): TransformChain {
  const { field, target, format } = config;
  return (events) => {
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const value = getField(event, field);
      const ms = value === undefined ? `field ${field} is missing` : parseTime(value, format);
      if (typeof ms === 'string') setField(event, TIMESTAMP_ERROR, ms);
      else if (ms < MIN_MS || ms > MAX_MS) setField(event, TIMESTAMP_ERROR, 'time out of range');
      else setField(event, target, new Date(ms).toISOString());
    }
    return events;
  };
}

/** Milliseconds since the epoch, or the reason the value is not a time. */
function parseTime(value: unknown, format: Format): number | string {
  switch (format) {
    case 'unix':
      return epoch(value, 1000);
    case 'unix_ms':
      return epoch(value, 1);
    case 'rfc3339':
      return typeof value === 'string'
        ? dateTime(RFC3339.exec(value), 'not an RFC 3339 time')
        : 'not a string';
    case 'common-log':
      return typeof value === 'string' ? commonLog(value) : 'not a string';
    case 'auto': {
      const n = number(value);
      if (n !== undefined) {
        const abs = Math.abs(n);
        if (abs < 1e11) return Math.round(n * 1000);
        if (abs < 1e14) return Math.round(n);
        return Math.floor(abs < 1e17 ? n / 1e3 : n / 1e6);
      }
      if (typeof value !== 'string') return 'not a time';
      const iso = ISO8601.exec(value);
      if (iso !== null) return dateTime(iso, 'not a time');
      return COMMON_LOG.test(value) ? commonLog(value) : 'unrecognized time format';
    }
  }
}

function number(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.length <= 32 && NUMBER.test(value)) return Number(value);
  return undefined;
}

function epoch(value: unknown, unitMs: number): number | string {
  const n = number(value);
  // Rounded so that 1.5e9 + .123 seconds lands on .123 despite binary fractions.
  return n === undefined ? 'not a number' : Math.round(n * unitMs);
}

function dateTime(m: RegExpExecArray | null, reason: string): number | string {
  if (m === null) return reason;
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
  const local = civil(+y!, +mo!, +d!, +h!, +mi!, s === undefined ? 0 : +s, millis(frac));
  if (local === undefined) return 'invalid date';
  if (z !== undefined || sign === undefined) return local;
  const offset = zone(sign, +oh!, om === undefined ? 0 : +om);
  return offset === undefined ? 'invalid offset' : local - offset;
}

function commonLog(value: string): number | string {
  const m = COMMON_LOG.exec(value);
  if (m === null) return 'not a common log time';
  const [, d, mon, y, h, mi, s, sign, oh, om] = m;
  const month = MONTHS[mon!];
  if (month === undefined) return 'invalid month';
  const local = civil(+y!, month, +d!, +h!, +mi!, +s!, 0);
  if (local === undefined) return 'invalid date';
  const offset = zone(sign!, +oh!, +om!);
  return offset === undefined ? 'invalid offset' : local - offset;
}

function millis(frac: string | undefined): number {
  if (frac === undefined) return 0;
  // Sub-millisecond digits are cut, not rounded, so a time never moves into the next second.
  return +(frac.length >= 3 ? frac.slice(0, 3) : frac.padEnd(3, '0'));
}

function zone(sign: string, hours: number, minutes: number): number | undefined {
  if (hours > 23 || minutes > 59) return undefined;
  const ms = (hours * 60 + minutes) * 60_000;
  return sign === '-' ? -ms : ms;
}

/** The UTC milliseconds of a calendar date and time, or undefined when a part is out of range. */
function civil(
  y: number,
  mo: number,
  d: number,
  h: number,
  mi: number,
  s: number,
  ms: number,
): number | undefined {
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 60) return undefined;
  // Days from the civil date (H. Hinnant's algorithm): Date.UTC would read years 0-99 as 1900-1999.
  const yy = mo <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  const days = era * 146_097 + doe - 719_468;
  // A leap second (:60) rolls into the next minute, as Date.UTC does.
  return ((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms;
}

function daysIn(y: number, mo: number): number {
  if (mo === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
}
