// A container's environment, as the kubelet builds it: envFrom sources in order, then env entries
// (later wins), each value able to use $(VAR) of those before it; then $(VAR) in command and args.
// "$$(VAR)" stays a literal "$(VAR)"; a reference to an unknown variable is left as written.

import { hostname } from 'node:os';
import type { ContainerSpec } from './config.js';
import type { PodManifest } from './manifest.js';
import { type Allocatable, hostAllocatable, type ResourceFieldRef, resourceFieldValue } from './resources.js';

export const POD_IP = '127.0.0.1';

/**
 * Host variables a process on this host needs that a container image would otherwise supply, and
 * the pod it runs in: its name and namespace, and its run directory (whose status.json has every
 * container's pid), so pillion in one container can signal another by name.
 */
export function baseEnv(
  host: Readonly<Record<string, string | undefined>>,
  pod: PodManifest,
  runDir?: string,
): Record<string, string> {
  const env: Record<string, string> = {
    HOSTNAME: pod.name,
    PILLION_POD_NAME: pod.name,
    PILLION_POD_NAMESPACE: pod.namespace,
  };
  if (runDir !== undefined) env.PILLION_POD_DIR = runDir;
  for (const key of ['PATH', 'HOME', 'LANG', 'TZ', 'USER', 'TMPDIR']) {
    const v = host[key];
    if (v !== undefined) env[key] = v;
  }
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return env;
}

export function containerEnv(
  c: ContainerSpec,
  pod: PodManifest,
  base: Record<string, string>,
  node: Allocatable = hostAllocatable(),
): Record<string, string> {
  const env: Record<string, string> = { ...base };
  for (const from of c.envFrom) {
    const data = from.configMapRef
      ? pod.configMaps.get(from.configMapRef.name)
      : from.secretRef
        ? pod.secrets.get(from.secretRef.name)
        : undefined;
    for (const [k, v] of data ?? []) env[`${from.prefix}${k}`] = v.toString('utf8');
  }
  for (const e of c.env) {
    let value: string | undefined;
    if (e.valueFrom?.configMapKeyRef)
      value = pod.configMaps
        .get(e.valueFrom.configMapKeyRef.name)
        ?.get(e.valueFrom.configMapKeyRef.key)
        ?.toString('utf8');
    else if (e.valueFrom?.secretKeyRef)
      value = pod.secrets
        .get(e.valueFrom.secretKeyRef.name)
        ?.get(e.valueFrom.secretKeyRef.key)
        ?.toString('utf8');
    else if (e.valueFrom?.fieldRef) value = fieldValue(e.valueFrom.fieldRef.fieldPath, pod);
    else if (e.valueFrom?.resourceFieldRef) value = resourceValue(e.valueFrom.resourceFieldRef, pod, node, c);
    else value = expand(e.value ?? '', env);
    if (value !== undefined) env[e.name] = value; // an optional ref that is absent sets nothing
  }
  return env;
}

/** Expands $(VAR) against env, as Kubernetes does in env values, command and args. */
export function expand(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && env[name] !== undefined ? env[name]! : match;
  });
}

/**
 * A resourceFieldRef's value: of the container it names, else of `self` (env); undefined when it
 * names no container of the pod (the manifest check refuses that before anything runs).
 */
export function resourceValue(
  ref: ResourceFieldRef,
  pod: PodManifest,
  node: Allocatable,
  self?: ContainerSpec,
): string | undefined {
  const target = ref.containerName
    ? [...pod.spec.initContainers, ...pod.spec.containers].find((x) => x.name === ref.containerName)
    : self;
  return target ? resourceFieldValue(ref, target, node) : undefined;
}

/** The value of a downward-API field path. */
export function fieldValue(path: string, pod: PodManifest): string | undefined {
  switch (path) {
    case 'metadata.name':
      return pod.name;
    case 'metadata.namespace':
      return pod.namespace;
    case 'metadata.uid':
      return pod.uid;
    case 'metadata.labels':
      return formatMap(pod.labels);
    case 'metadata.annotations':
      return formatMap(pod.annotations);
    case 'status.podIP':
    case 'status.podIPs':
    case 'status.hostIP':
      return POD_IP;
    case 'spec.nodeName':
      return hostname();
    case 'spec.serviceAccountName':
      return 'default';
  }
  const m = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(path);
  if (m) return (m[1] === 'labels' ? pod.labels : pod.annotations)[m[2]!];
  return undefined;
}

// The downward API writes maps as key="value" lines, sorted by key.
function formatMap(map: Record<string, string>): string {
  return Object.keys(map)
    .sort()
    .map((k) => `${k}=${JSON.stringify(map[k])}`)
    .join('\n');
}
