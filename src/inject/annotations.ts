// The per-pod annotations that steer injection, read into the options of one pod. The table in
// docs/kubernetes.md is written from ANNOTATIONS (a test checks that each one is there).

import { didYouMean } from '../lib/did-you-mean.js';
import type { SidecarSettings } from './config.js';

export const ANNOTATION_PREFIX = 'pillion.dev/';

/** Every annotation pillion reads or writes, with what it takes. */
export const ANNOTATIONS = {
  inject: 'pillion.dev/inject',
  status: 'pillion.dev/status',
  config: 'pillion.dev/config',
  sidecarMode: 'pillion.dev/sidecar-mode',
  sidecarPosition: 'pillion.dev/sidecar-position',
  interception: 'pillion.dev/interception',
  inboundPorts: 'pillion.dev/inbound-ports',
  excludeOutboundPorts: 'pillion.dev/exclude-outbound-ports',
  excludeOutboundCidrs: 'pillion.dev/exclude-outbound-cidrs',
  logPath: 'pillion.dev/log-path',
  tlsSecret: 'pillion.dev/tls-secret',
  image: 'pillion.dev/image',
  cpu: 'pillion.dev/cpu',
  memory: 'pillion.dev/memory',
  cpuLimit: 'pillion.dev/cpu-limit',
  memoryLimit: 'pillion.dev/memory-limit',
} as const;

/** The label the webhook's objectSelector reads (the annotation of the same name works too). */
export const INJECT_LABEL = ANNOTATIONS.inject;

/** What one pod gets: the injector's settings with the pod's annotations applied. */
export interface PodOptions {
  configMap: string;
  mode: 'native' | 'legacy';
  /** native mode: before the pod's own init containers (they can use pillion), or after them. */
  position: 'first' | 'after-init';
  interception: 'none' | 'iptables';
  /** App ports whose inbound traffic is redirected; undefined: the containers' declared ports. */
  inboundPorts: number[] | undefined;
  excludeOutboundPorts: number[];
  excludeOutboundCidrs: string[];
  logPaths: string[];
  tlsSecret: string | undefined;
  image: string;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}

export interface AnnotationProblem {
  /** The annotation's key, for positioning. */
  key: string;
  message: string;
  hint?: string | undefined;
}

const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const CIDR = /^[0-9a-fA-F.:]+\/\d{1,3}$/;
const KNOWN = Object.values(ANNOTATIONS) as string[];

/** Reads the pod's pillion.dev/ annotations over the settings; every problem is reported. */
export function podOptions(
  annotations: Readonly<Record<string, string>>,
  settings: SidecarSettings,
): { options: PodOptions; problems: AnnotationProblem[] } {
  const problems: AnnotationProblem[] = [];
  const get = (key: string) => annotations[key]?.trim();
  const requests: Record<string, string> = { ...settings.resources.requests } as Record<string, string>;
  const limits: Record<string, string> = { ...settings.resources.limits } as Record<string, string>;
  const options: PodOptions = {
    configMap: settings.configMap,
    mode: settings.mode,
    position: 'first',
    interception: settings.interception,
    inboundPorts: undefined,
    excludeOutboundPorts: [...settings.excludeOutboundPorts],
    excludeOutboundCidrs: [...settings.excludeOutboundCidrs],
    logPaths: [],
    tlsSecret: undefined,
    image: settings.image,
    resources: { requests, limits },
  };

  for (const key of Object.keys(annotations)) {
    if (!key.startsWith(ANNOTATION_PREFIX) || KNOWN.includes(key)) continue;
    const guess = didYouMean(key, KNOWN);
    problems.push({
      key,
      message: `unknown annotation ${key}`,
      hint: guess ? `did you mean "${guess}"?` : `pillion reads ${KNOWN.join(', ')}`,
    });
  }

  const oneOf = <T extends string>(key: string, values: readonly T[]): T | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if ((values as readonly string[]).includes(v)) return v as T;
    problems.push({ key, message: `"${v}" is not one of ${values.join(', ')}` });
    return undefined;
  };
  const inject = get(ANNOTATIONS.inject);
  if (inject !== undefined && inject !== 'true' && inject !== 'false')
    problems.push({ key: ANNOTATIONS.inject, message: `"${inject}" is neither "true" nor "false"` });

  const config = get(ANNOTATIONS.config);
  if (config !== undefined) {
    if (DNS_NAME.test(config) && config.length <= 253) options.configMap = config;
    else problems.push({ key: ANNOTATIONS.config, message: `"${config}" is not a ConfigMap name` });
  }
  options.mode = oneOf(ANNOTATIONS.sidecarMode, ['native', 'legacy'] as const) ?? options.mode;
  options.position = oneOf(ANNOTATIONS.sidecarPosition, ['first', 'after-init'] as const) ?? options.position;
  options.interception =
    oneOf(ANNOTATIONS.interception, ['none', 'iptables'] as const) ?? options.interception;

  const ports = (key: string): number[] | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if (v === '') return [];
    const out: number[] = [];
    for (const part of v.split(',').map((s) => s.trim())) {
      const n = /^\d+$/.test(part) ? Number(part) : NaN;
      if (n >= 1 && n <= 65535) out.push(n);
      else
        problems.push({ key, message: `"${part}" is not a port number`, hint: 'write ports as 8080,8443' });
    }
    return out;
  };
  options.inboundPorts = ports(ANNOTATIONS.inboundPorts);
  options.excludeOutboundPorts = ports(ANNOTATIONS.excludeOutboundPorts) ?? options.excludeOutboundPorts;
  const cidrs = get(ANNOTATIONS.excludeOutboundCidrs);
  if (cidrs !== undefined) {
    options.excludeOutboundCidrs = [];
    for (const c of cidrs
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      if (CIDR.test(c)) options.excludeOutboundCidrs.push(c);
      else
        problems.push({
          key: ANNOTATIONS.excludeOutboundCidrs,
          message: `"${c}" is not a CIDR`,
          hint: 'write 10.0.0.0/8,192.168.1.0/24',
        });
    }
  }
  const logPath = get(ANNOTATIONS.logPath);
  if (logPath !== undefined) {
    for (const p of logPath
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      if (p.startsWith('/') && !p.split('/').includes('..'))
        options.logPaths.push(p.replace(/\/+$/, '') || '/');
      else problems.push({ key: ANNOTATIONS.logPath, message: `"${p}" is not an absolute directory path` });
    }
  }
  const tls = get(ANNOTATIONS.tlsSecret);
  if (tls !== undefined) {
    if (DNS_NAME.test(tls)) options.tlsSecret = tls;
    else problems.push({ key: ANNOTATIONS.tlsSecret, message: `"${tls}" is not a Secret name` });
  }
  const image = get(ANNOTATIONS.image);
  if (image !== undefined) {
    if (image !== '' && !/\s/.test(image)) options.image = image;
    else problems.push({ key: ANNOTATIONS.image, message: `"${image}" is not an image reference` });
  }
  for (const [key, list, name] of [
    [ANNOTATIONS.cpu, requests, 'cpu'],
    [ANNOTATIONS.memory, requests, 'memory'],
    [ANNOTATIONS.cpuLimit, limits, 'cpu'],
    [ANNOTATIONS.memoryLimit, limits, 'memory'],
  ] as const) {
    const v = get(key);
    if (v === undefined) continue;
    if (QUANTITY.test(v)) list[name] = v;
    else
      problems.push({
        key,
        message: `"${v}" is not a Kubernetes quantity`,
        hint: 'write 100m, 0.5, 128Mi or 1Gi',
      });
  }
  return { options, problems };
}
