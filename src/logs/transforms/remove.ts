// The `remove` transform: deletes the listed fields; a missing one is no error.

import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { setField } from './field.js';
import type { TransformChain } from './index.js';

type RemoveConfig = Extract<TransformConfig, { type: 'remove' }>;

/**
 * An event that has a listed field is replaced (in the array) by a copy without it: `delete`
 * would turn it into a slow dictionary-mode object for every later stage and the sink's encoder.
 */
export function compileRemove(config: RemoveConfig): TransformChain {
  const names = [...new Set(config.fields)];
  const removed = new Set(names);
  return (events) => {
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      // Own fields only, so an inherited name (`constructor`) never counts as present.
      let any = false;
      for (let j = 0; j < names.length && !any; j++) any = Object.hasOwn(event, names[j]!);
      if (!any) continue;
      const out: LogEvent = {};
      for (const key in event) if (!removed.has(key)) setField(out, key, event[key]);
      events[i] = out;
    }
    return events;
  };
}
