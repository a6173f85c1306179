// Sizes in config carry a byte unit. KiB/MiB/GiB are powers of 1024 and KB/MB/GB powers of 1000,
// as IEC and SI define them, so "64KiB" and "64KB" are never confused.

import type { ParseResult } from './duration.js';

const UNIT_BYTES: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};
const SIZE = /^(\d+(?:\.\d+)?)\s?([KMGT]i?B|B)$/;

/** Parses "512B", "64KiB", "10MB", "1.5GiB" into a whole number of bytes. */
export function parseSize(text: string): ParseResult<number> {
  const input = text.trim();
  if (/^\d+(\.\d+)?$/.test(input)) return { ok: false, reason: `"${input}" has no unit` };
  const m = SIZE.exec(input);
  if (!m) {
    const lower = /^(\d+(?:\.\d+)?)\s?([kmgt]i?b|[kmgt])$/i.exec(input);
    if (lower) return { ok: false, reason: `"${input}" has an unknown unit (units are case-sensitive)` };
    return { ok: false, reason: `"${input}" is not a size` };
  }
  const bytes = Math.round(Number(m[1]) * UNIT_BYTES[m[2]!]!);
  if (!Number.isSafeInteger(bytes)) return { ok: false, reason: `"${input}" is too large` };
  return { ok: true, value: bytes };
}

/** Formats bytes with the largest IEC unit that divides them exactly. */
export function formatSize(bytes: number): string {
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB'] as const) {
    const scale = UNIT_BYTES[unit]!;
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return `${bytes}B`;
}
