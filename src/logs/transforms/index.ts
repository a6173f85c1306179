// The transforms' public surface: the `transforms:` list compiled once into one chain per source,
// each holding only the transforms whose `sources:` take that source, in the order configured.

import type { Clock } from '../../lib/clock.js';
import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { compileEnrich, enrichAppends, fieldNames } from './enrich.js';
import { compileFilter } from './filter.js';
import { compileKeep } from './keep.js';
import { compileRedact } from './redact.js';
import { compileRemove } from './remove.js';
import { compileRename } from './rename.js';
import { compileTimestamp } from './timestamp.js';

/**
 * Edits a chunk's events in place and returns the events kept: the same array when none was
 * dropped (so the common case allocates no array), a new one (possibly empty) when a filter
 * dropped some. rename, remove and keep put a rebuilt object in an event's slot instead of using
 * `delete`, so read events from the array returned, not from references taken before the call.
 * Field names are top-level keys: `a.b` names the field called "a.b", not b inside a.
 */
export type TransformChain = (events: LogEvent[]) => LogEvent[];

/** What transforms take from the outside, injected so tests need no real host, pod or time. */
export interface TransformDeps {
  hostname: string;
  /** The process environment (POD_NAME, POD_NAMESPACE, NODE_NAME for `enrich.kubernetes`). */
  env: Readonly<Record<string, string | undefined>>;
  clock: Clock;
  /** Reads a text file (the downward API labels file); called once, when the transforms are compiled. */
  readFile: (path: string) => string;
}

/** One chain per source name. Each transform is compiled once and shared by the chains it applies to. */
export function compileTransforms(
  configs: TransformConfig[],
  sourceNames: string[],
  deps: TransformDeps,
): Map<string, TransformChain> {
  const compiled = configs.map((c) => compileOne(c, deps));
  const chains = new Map<string, TransformChain>();
  for (const source of sourceNames) {
    const steps: TransformChain[] = [];
    for (let i = 0; i < configs.length; i++) {
      const only = configs[i]!.sources;
      if (only === undefined || only.includes(source)) steps.push(compiled[i]!);
    }
    chains.set(source, chainOf(steps));
  }
  return chains;
}

/**
 * Whether every transform that applies to `source` only appends fields (enrich, which keeps an
 * event's raw JSON text in step) or drops events (filter): then the source's JSON parser keeps each
 * event's text and sinks send it instead of encoding the event again (see RAW in types.ts).
 */
export function appendsOnly(configs: TransformConfig[], source: string): boolean {
  for (const c of configs) {
    if (c.sources !== undefined && !c.sources.includes(source)) continue;
    switch (c.type) {
      case 'enrich':
        if (!enrichAppends(c)) return false;
        break;
      case 'filter':
        break;
      case 'rename':
      case 'remove':
      case 'keep':
      case 'redact':
      case 'timestamp':
        return false;
    }
  }
  return true;
}

/**
 * When only enrich transforms apply to `source` (no filter, nothing that edits), the names they
 * set: its events need no fields until a sink reads them, so they can stay lean (leanEvent in
 * types.ts) if the sinks only send their text. Undefined when some transform reads fields.
 */
export function leanNames(configs: TransformConfig[], source: string): string[] | undefined {
  const names: string[] = [];
  for (const c of configs) {
    if (c.sources !== undefined && !c.sources.includes(source)) continue;
    if (c.type !== 'enrich' || !enrichAppends(c)) return undefined;
    names.push(...fieldNames(c));
  }
  return names;
}

function compileOne(config: TransformConfig, deps: TransformDeps): TransformChain {
  switch (config.type) {
    case 'enrich':
      return compileEnrich(config, deps);
    case 'rename':
      return compileRename(config);
    case 'remove':
      return compileRemove(config);
    case 'keep':
      return compileKeep(config);
    case 'filter':
      return compileFilter(config);
    case 'redact':
      return compileRedact(config);
    case 'timestamp':
      return compileTimestamp(config);
  }
}

function chainOf(steps: TransformChain[]): TransformChain {
  if (steps.length === 0) return (events) => events;
  if (steps.length === 1) return steps[0]!;
  return (events) => {
    let out = events;
    for (let i = 0; i < steps.length && out.length > 0; i++) out = steps[i]!(out);
    return out;
  };
}
