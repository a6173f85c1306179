// The `rename` transform: moves fields to new names. All renames of one transform happen at once,
// so `{ a: b, b: a }` swaps the two fields instead of losing one.

import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { setField } from './field.js';
import type { TransformChain } from './index.js';

type RenameConfig = Extract<TransformConfig, { type: 'rename' }>;

/**
 * An event that has a field to rename is replaced (in the array) by a rebuilt object: `delete`
 * would turn it into a slow dictionary-mode object for every later stage and the sink's encoder.
 * Renamed fields come last; of two renames onto one name, the later one in the config wins.
 */
export function compileRename(config: RenameConfig): TransformChain {
  const from: string[] = [];
  const to: string[] = [];
  for (const [old, name] of Object.entries(config.fields)) {
    if (old === name) continue;
    from.push(old);
    to.push(name);
  }
  const isFrom = new Set(from);
  // Target name → the renames onto it: an existing field of that name gives way only when one applies.
  const onto = new Map<string, number[]>();
  for (let j = 0; j < to.length; j++) {
    const list = onto.get(to[j]!);
    if (list) list.push(j);
    else onto.set(to[j]!, [j]);
  }
  // Scratch space reused for every event: chains run one at a time on one thread.
  const present: boolean[] = new Array<boolean>(from.length).fill(false);

  const replaced = (key: string): boolean => {
    const list = onto.get(key);
    if (list === undefined) return false;
    for (let j = 0; j < list.length; j++) if (present[list[j]!]) return true;
    return false;
  };

  return (events) => {
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      let any = false;
      for (let j = 0; j < from.length; j++) any = (present[j] = Object.hasOwn(event, from[j]!)) || any;
      if (!any) continue;
      const out: LogEvent = {};
      for (const key in event) if (!isFrom.has(key) && !replaced(key)) setField(out, key, event[key]);
      for (let j = 0; j < from.length; j++) if (present[j]) setField(out, to[j]!, event[from[j]!]);
      events[i] = out;
    }
    return events;
  };
}
