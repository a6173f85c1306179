// Kubernetes resource quantities ("128Mi", "1Gi", "500M", "500m", "1.5"), as resources.limits
// and a resourceFieldRef's divisor take them.

import type { ParseResult } from '../lib/duration.js';

const SUFFIX: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6,
};

export function parseQuantity(input: string | number): ParseResult<number> {
  if (typeof input === 'number')
    return Number.isFinite(input) && input >= 0
      ? { ok: true, value: input }
      : { ok: false, reason: `${input} is not a quantity` };
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(input.trim());
  if (!m)
    return {
      ok: false,
      reason: `"${input}" is not a Kubernetes quantity (e.g. "128Mi", "1Gi", "500m", "2")`,
    };
  return { ok: true, value: Number(m[1]) * SUFFIX[m[2] ?? '']! };
}
