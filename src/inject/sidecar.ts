// What injection adds to a pod, built from the injector's settings and one pod's options: the
// pillion container, the iptables init container, and the volumes they mount. Plain Kubernetes
// objects, as an operator would write them by hand.

import type { IContainer, IVolume } from 'kubernetes-models/v1';
import type { PodOptions } from './annotations.js';
import type { SidecarSettings } from './config.js';
import { type InterceptionPlan, planArgs } from './iptables.js';

export const SIDECAR_NAME = 'pillion';
export const INIT_NAME = 'pillion-init';
/** Where the ConfigMap's pillion.yaml is mounted; the sidecar runs `pillion run -c` this file. */
export const CONFIG_DIR = '/etc/pillion';
export const CONFIG_KEY = 'pillion.yaml';
export const DATA_DIR = '/var/lib/pillion';
export const TLS_DIR = '/etc/pillion-tls';
/** The environment variable an app of a Job (legacy mode) posts to when it is done. */
export const QUIT_ENV = 'PILLION_QUIT_URL';

export const VOLUMES = {
  config: 'pillion-config',
  data: 'pillion-data',
  tls: 'pillion-tls',
  /** A shared emptyDir per log path; suffixed with its index. */
  logs: 'pillion-logs',
} as const;

/**
 * Waits for the probe listener's /healthz (pillion has started every role) and exits 0, or 1 after
 * the timeout: a blocking postStart hook holds the next container until then. Node is in pillion's
 * image (and on any host that runs pillion), so the hook needs no shell or curl.
 */
const WAIT_SCRIPT = [
  "const [url, ms] = process.argv.slice(1); const end = Date.now() + Number(ms); const http = require('node:http');",
  "const again = () => { if (Date.now() > end) { console.error('pillion did not start within ' + ms + ' ms'); process.exit(1); } setTimeout(check, 250); };",
  "const check = () => http.get(url, (res) => { res.resume(); if (res.statusCode === 200) process.exit(0); again(); }).on('error', again);",
  'check();',
].join(' ');

export interface SidecarParts {
  /** Init containers placed before the pod's own, in this order. */
  initContainers: IContainer[];
  /** The pillion container (an init container with restartPolicy Always in native mode). */
  sidecar: IContainer;
  volumes: IVolume[];
}

export interface BuildInput {
  settings: SidecarSettings;
  options: PodOptions;
  /** Log directories to share: the volume the app already mounts there, or undefined for a new one. */
  logVolumes: { path: string; volume: string | undefined }[];
  /** The app's ports redirected to pillion's inbound listener (iptables interception only). */
  inboundPorts: number[];
}

export function buildSidecar({ settings, options, logVolumes, inboundPorts }: BuildInput): SidecarParts {
  const { ports } = settings;
  const volumes: IVolume[] = [
    { name: VOLUMES.config, configMap: { name: options.configMap } },
    { name: VOLUMES.data, emptyDir: {} },
  ];
  const mounts: NonNullable<IContainer['volumeMounts']> = [
    { name: VOLUMES.config, mountPath: CONFIG_DIR, readOnly: true },
    // pillion writes only here (log checkpoints and buffers); the root file system is read-only.
    { name: VOLUMES.data, mountPath: DATA_DIR },
  ];
  logVolumes.forEach(({ path, volume }, i) => {
    const name = volume ?? `${VOLUMES.logs}-${i}`;
    if (volume === undefined) volumes.push({ name, emptyDir: {} });
    mounts.push({ name, mountPath: path, readOnly: true });
  });
  if (options.tlsSecret !== undefined) {
    volumes.push({ name: VOLUMES.tls, secret: { secretName: options.tlsSecret } });
    mounts.push({ name: VOLUMES.tls, mountPath: TLS_DIR, readOnly: true });
  }
  const probe = (path: string) => ({ httpGet: { path, port: ports.probe } });
  const resources: IContainer['resources'] = {};
  if (Object.keys(options.resources.requests).length) resources.requests = { ...options.resources.requests };
  if (Object.keys(options.resources.limits).length) resources.limits = { ...options.resources.limits };
  const startupSeconds = Math.max(1, Math.ceil(settings.startupTimeout / 1000));
  const sidecar: IContainer = {
    name: SIDECAR_NAME,
    image: options.image,
    imagePullPolicy: settings.imagePullPolicy,
    command: [
      ...settings.command,
      'run',
      '-c',
      `${CONFIG_DIR}/${CONFIG_KEY}`,
      '--probe-listen',
      `:${ports.probe}`,
    ],
    ...(options.mode === 'native' ? { restartPolicy: 'Always' } : {}),
    ports: [{ name: 'pillion-probe', containerPort: ports.probe, protocol: 'TCP' }],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    ],
    resources,
    volumeMounts: mounts,
    // The kubelet starts the app once this passes (native: the next container waits for it).
    startupProbe: { ...probe('/healthz'), periodSeconds: 1, failureThreshold: startupSeconds },
    readinessProbe: { ...probe('/readyz'), periodSeconds: 5, failureThreshold: 3 },
    securityContext: {
      runAsUser: settings.uid,
      runAsGroup: settings.uid,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
  };
  if (options.mode === 'legacy') {
    // Before 1.29 a regular container, placed first: the kubelet starts containers in order and
    // waits for each one's postStart, so the app starts after pillion (holdApplicationUntilProxyStarts).
    sidecar.lifecycle = {
      postStart: {
        exec: {
          command: [
            'node',
            '-e',
            WAIT_SCRIPT,
            `http://127.0.0.1:${ports.probe}/healthz`,
            String(settings.startupTimeout),
          ],
        },
      },
    };
  }
  const initContainers: IContainer[] = [];
  if (options.interception === 'iptables') initContainers.push(iptablesInit(settings, options, inboundPorts));
  return { initContainers, sidecar, volumes };
}

/** The interception plan for this pod (what `pillion iptables` is told). */
export function interceptionPlan(
  settings: SidecarSettings,
  options: PodOptions,
  inboundPorts: number[],
): InterceptionPlan {
  return {
    inboundPorts,
    inboundPort: settings.ports.inbound,
    outboundPort: settings.ports.outbound,
    uid: settings.uid,
    excludeOutboundPorts: options.excludeOutboundPorts,
    excludeOutboundCidrs: options.excludeOutboundCidrs,
  };
}

function iptablesInit(settings: SidecarSettings, options: PodOptions, inboundPorts: number[]): IContainer {
  return {
    name: INIT_NAME,
    image: options.image,
    imagePullPolicy: settings.imagePullPolicy,
    command: [
      ...settings.command,
      'iptables',
      '--apply',
      ...planArgs(interceptionPlan(settings, options, inboundPorts)),
    ],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
    securityContext: {
      // iptables-restore needs root and NET_ADMIN in the pod's network namespace, nothing more.
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}
