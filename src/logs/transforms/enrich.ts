// The `enrich` transform: static fields, the host name, pod metadata from the downward API and the
// time of collection, set on every event (replacing a field of the same name).

import { parseDownwardLabels } from '../../lib/downward-labels.js';
import { PillionError } from '../../lib/errors.js';
import type { TransformConfig } from '../config.js';
import { dropRaw, type LogEvent, rawOf, setRaw } from '../types.js';
import { setField } from './field.js';
import type { TransformChain, TransformDeps } from './index.js';

type EnrichConfig = Extract<TransformConfig, { type: 'enrich' }>;

interface PodMetadata {
  pod: string | undefined;
  namespace: string | undefined;
  node: string | undefined;
  labelNames: string[] | undefined;
  labelValues: string[];
}

/** The field names an enrich sets, in order. */
/** The names an enrich sets, in the order it sets them. */
export function fieldNames(config: EnrichConfig): string[] {
  const names = Object.keys(config.fields);
  if (config.hostname !== undefined) names.push(config.hostname);
  if (config.kubernetes) names.push(config.kubernetes.field);
  if (config.collectedAt !== undefined) names.push(config.collectedAt);
  return names;
}

/** Whether the enrich can extend an event's raw JSON text: it sets no name twice. */
export function enrichAppends(config: EnrichConfig): boolean {
  const names = fieldNames(config);
  return new Set(names).size === names.length;
}

export function compileEnrich(config: EnrichConfig, deps: TransformDeps): TransformChain {
  const names: string[] = [];
  const values: string[] = [];
  for (const [name, value] of Object.entries(config.fields)) {
    names.push(name);
    values.push(value);
  }
  if (config.hostname !== undefined) {
    names.push(config.hostname);
    values.push(deps.hostname);
  }
  const podField = config.kubernetes?.field;
  const pod = config.kubernetes ? podMetadata(config.kubernetes.labelsFile, deps) : undefined;
  const collectedAt = config.collectedAt;
  const clock = deps.clock;
  // An event that still has its raw JSON text gets the fields appended to it, as JSON.stringify
  // would write them at the end of the object; unless one of them is already there, since
  // stringify would then write it in its old place.
  const appends = enrichAppends(config);
  const allNames = fieldNames(config);
  let fixed = '';
  for (let j = 0; j < names.length; j++) fixed += `,${JSON.stringify(names[j])}:${JSON.stringify(values[j])}`;
  if (pod !== undefined) fixed += `,${JSON.stringify(podField)}:${JSON.stringify(podObject(pod))}`;

  return (events) => {
    const at = collectedAt === undefined ? '' : new Date(clock.now()).toISOString();
    const suffix = collectedAt === undefined ? fixed : `${fixed},${JSON.stringify(collectedAt)}:"${at}"`;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const raw = rawOf(event);
      if (raw !== undefined) {
        let clash = !appends;
        for (let j = 0; j < allNames.length && !clash; j++) clash = Object.hasOwn(event, allNames[j]!);
        if (clash) dropRaw(event);
        else setRaw(event, raw + suffix);
      }
      for (let j = 0; j < names.length; j++) setField(event, names[j]!, values[j]);
      // A fresh object per event: later stages (redact) edit nested values in place.
      if (pod !== undefined) setField(event, podField!, podObject(pod));
      if (collectedAt !== undefined) setField(event, collectedAt, at);
    }
    return events;
  };
}

function podMetadata(labelsFile: string | undefined, deps: TransformDeps): PodMetadata {
  const meta: PodMetadata = {
    pod: deps.env.POD_NAME,
    namespace: deps.env.POD_NAMESPACE,
    node: deps.env.NODE_NAME,
    labelNames: undefined,
    labelValues: [],
  };
  if (labelsFile !== undefined) {
    let text: string;
    try {
      text = deps.readFile(labelsFile);
    } catch (err) {
      // The downward API mounts the file before any container starts, so its absence is a
      // misconfigured path rather than a race worth waiting out.
      throw new PillionError(
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `enrich.kubernetes.labelsFile ${labelsFile} cannot be read: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const labels = parseDownwardLabels(text);
    meta.labelNames = [...labels.keys()];
    meta.labelValues = [...labels.values()];
  }
  return meta;
}

function podObject(meta: PodMetadata): LogEvent {
  const out: LogEvent = {};
  if (meta.pod !== undefined) out.pod = meta.pod;
  if (meta.namespace !== undefined) out.namespace = meta.namespace;
  if (meta.node !== undefined) out.node = meta.node;
  const names = meta.labelNames;
  if (names !== undefined) {
    const labels: LogEvent = {};
    for (let i = 0; i < names.length; i++) setField(labels, names[i]!, meta.labelValues[i]);
    out.labels = labels;
  }
  return out;
}
