// The downward API's resourceFieldRef (env values and downwardAPI volume files), as the kubelet
// resolves it: the container's limit or request divided by `divisor`, rounded up. A limit that is
// not set is the node's allocatable amount (kubelet_resources.go) — here this host's CPU count and
// memory; a request that is not set is its limit when that is set (the API server's defaulting),
// else 0.

import { availableParallelism, totalmem } from 'node:os';
import type { ContainerSpec } from './config.js';
import { parseQuantity } from './quantity.js';

/** What a resourceFieldRef may name here. */
export const RESOURCE_FIELDS = ['limits.cpu', 'limits.memory', 'requests.cpu', 'requests.memory'] as const;
export type ResourceField = (typeof RESOURCE_FIELDS)[number];

// The divisors Kubernetes' validation allows (validContainerResourceDivisorForCPU / ...ForMemory).
export const CPU_DIVISORS = ['1m', '1'];
export const MEMORY_DIVISORS = [
  '1',
  '1k',
  '1M',
  '1G',
  '1T',
  '1P',
  '1E',
  '1Ki',
  '1Mi',
  '1Gi',
  '1Ti',
  '1Pi',
  '1Ei',
];

export interface ResourceFieldRef {
  containerName?: string | undefined;
  resource: string;
  divisor?: string | number | undefined;
}

/** The node's allocatable CPU (cores) and memory (bytes). */
export interface Allocatable {
  cpu: number;
  memory: number;
}

export function hostAllocatable(): Allocatable {
  return { cpu: availableParallelism(), memory: totalmem() };
}

/** Whether `divisor` is one Kubernetes accepts for `resource` (compared by value: "1000m" is "1"). */
export function validDivisor(resource: string, divisor: string | number): boolean {
  const d = parseQuantity(divisor);
  if (!d.ok) return false;
  const allowed = resource.endsWith('.cpu') ? CPU_DIVISORS : MEMORY_DIVISORS;
  return allowed.some((a) => {
    const v = parseQuantity(a);
    return v.ok && Math.abs(v.value - d.value) < 1e-9 * Math.max(1, v.value);
  });
}

/** The value a resourceFieldRef resolves to for `container`, as the decimal string the kubelet writes. */
export function resourceFieldValue(
  ref: ResourceFieldRef,
  container: ContainerSpec,
  node: Allocatable,
): string {
  const [kind, name] = ref.resource.split('.') as ['limits' | 'requests', 'cpu' | 'memory'];
  const amount = (q: string | number | undefined) => {
    if (q === undefined) return undefined;
    const r = parseQuantity(q);
    return r.ok ? r.value : undefined;
  };
  const limit = amount(container.resources?.limits?.[name]);
  const request = amount(container.resources?.requests?.[name]);
  const value = kind === 'limits' ? (limit ?? node[name]) : (request ?? limit ?? 0);
  const divisor = amount(ref.divisor ?? 1) ?? 1;
  // CPU in millicores, as the kubelet divides MilliValue()s, so 0.5 cores / 1 is 1, not 0.
  const n = name === 'cpu' ? Math.round(value * 1000) / Math.round(divisor * 1000) : value / divisor;
  return String(Math.ceil(n - 1e-9));
}
