// The `keep` transform: deletes every field not listed; a listed field that is missing stays missing.

import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { setField } from './field.js';
import type { TransformChain } from './index.js';

type KeepConfig = Extract<TransformConfig, { type: 'keep' }>;

/**
 * Each event is replaced (in the array) by a copy of the listed fields, in the listed order:
 * deleting the others would turn it into a slow dictionary-mode object, and copying a few
 * listed fields is cheaper than visiting every field.
 */
export function compileKeep(config: KeepConfig): TransformChain {
  const names = [...new Set(config.fields)];
  return (events) => {
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const out: LogEvent = {};
      for (let j = 0; j < names.length; j++) {
        const name = names[j]!;
        if (Object.hasOwn(event, name)) setField(out, name, event[name]);
      }
      events[i] = out;
    }
    return events;
  };
}
