// The `filter` transform: keeps or drops events by one field's value as text. A missing field never
// matches, so `action: keep` drops events without it and `action: drop` lets them through.

import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { fieldText, getField } from './field.js';
import type { TransformChain } from './index.js';

type FilterConfig = Extract<TransformConfig, { type: 'filter' }>;

export function compileFilter(config: FilterConfig): TransformChain {
  const field = config.field;
  const dropMatching = config.action === 'drop';
  const equals = config.equals === undefined ? undefined : new Set(config.equals);
  // No `g` flag: test() then keeps no lastIndex state from one event to the next.
  const pattern = config.matches === undefined ? undefined : new RegExp(config.matches);

  const matches = (event: LogEvent): boolean => {
    const value = getField(event, field);
    if (value === undefined) return false;
    const text = fieldText(value);
    return equals !== undefined ? equals.has(text) : pattern!.test(text);
  };

  return (events) => {
    // The kept events are copied out only from the first drop on, so a chunk nothing is dropped
    // from comes back as the same array.
    let kept: LogEvent[] | undefined;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (matches(event) !== dropMatching) kept?.push(event);
      else kept ??= events.slice(0, i);
    }
    return kept ?? events;
  };
}
