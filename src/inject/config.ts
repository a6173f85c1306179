// Schema of the injector's settings: what `pillion inject --injector-config` and
// `pillion webhook --config` read. One file serves both, so a manifest injected by hand and a pod
// injected by the webhook get the same sidecar. Per-pod annotations override the `sidecar` part.

import { z } from 'zod';
import { address, duration, size } from '../config/index.js';

const quantity = z
  .string()
  .regex(/^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$/, 'not a Kubernetes quantity')
  .describe('A Kubernetes quantity: 100m, 0.5, 128Mi, 1G.');

const resourceList = z
  .strictObject({ cpu: quantity.optional(), memory: quantity.optional() })
  .describe('cpu and memory quantities.');

const portNumber = z.number().int().min(1).max(65535);

export const sidecarSchema = z
  .strictObject({
    image: z
      .string()
      .min(1)
      .default('pillion/pillion:0.1.0')
      .describe('Image of the sidecar and of the iptables init container (deploy/image builds it).'),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
    command: z
      .array(z.string().min(1))
      .min(1)
      .default(['pillion'])
      .describe('How the image runs pillion; the image puts `pillion` on its PATH.'),
    configMap: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'not a ConfigMap name (lower case, digits, - and .)')
      .default('pillion-sidecar')
      .describe(
        'ConfigMap holding pillion.yaml under the key `pillion.yaml`; pillion.dev/config overrides it.',
      ),
    mode: z
      .enum(['native', 'legacy'])
      .default('native')
      .describe(
        'native: an init container with restartPolicy Always (Kubernetes 1.29+). legacy: the first regular container, with a postStart hook that holds the app until pillion has started.',
      ),
    interception: z
      .enum(['none', 'iptables'])
      .default('none')
      .describe('iptables adds an init container that redirects the pod’s traffic through pillion.'),
    uid: z
      .number()
      .int()
      .min(1)
      .default(1337)
      .describe('User (and group) pillion runs as; its own traffic is never redirected.'),
    ports: z
      .strictObject({
        admin: portNumber
          .default(15000)
          .describe('Port of pillion’s admin server (127.0.0.1), for /quitquitquit.'),
        probe: portNumber
          .default(15021)
          .describe(
            'Port of the probe listener (all interfaces, /healthz and /readyz only) the kubelet probes.',
          ),
        inbound: portNumber
          .default(15006)
          .describe('Inbound listener that intercepted inbound traffic is redirected to.'),
        outbound: portNumber
          .default(15001)
          .describe('Outbound listener that intercepted outbound traffic is redirected to.'),
      })
      .prefault({}),
    resources: z
      .strictObject({
        requests: resourceList.prefault({ cpu: '100m', memory: '128Mi' }),
        limits: resourceList.prefault({ memory: '256Mi' }),
      })
      .prefault({})
      .describe(
        'Resources of the sidecar; pillion.dev/cpu, /memory, /cpu-limit and /memory-limit override them.',
      ),
    startupTimeout: duration({ min: '1s', max: '1h' })
      .default(120_000)
      .describe('How long pillion may take to start before the kubelet restarts it.'),
    excludeOutboundPorts: z.array(portNumber).default([]).describe('Outbound TCP ports never redirected.'),
    excludeOutboundCidrs: z
      .array(z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, 'not a CIDR (10.0.0.0/8)'))
      .default([])
      .describe('Outbound destinations never redirected.'),
  })
  .prefault({});

export const injectorSchema = z
  .strictObject({
    sidecar: sidecarSchema,
    injection: z
      .strictObject({
        policy: z
          .enum(['enabled', 'disabled'])
          .default('enabled')
          .describe(
            'enabled: every pod the webhook is sent is injected unless it opts out; disabled: only pods that opt in (pillion.dev/inject: "true").',
          ),
        excludeNamespaces: z
          .array(z.string())
          .default(['kube-system', 'kube-public', 'kube-node-lease'])
          .describe('Namespaces the webhook never injects into, whatever their labels.'),
      })
      .prefault({}),
    webhook: z
      .strictObject({
        listen: address().prefault(':9443').describe('HTTPS address of the webhook.'),
        maxRequestBytes: size({ min: '1KiB', max: '64MiB' })
          .default(3 * 1024 * 1024)
          .describe(
            'Largest AdmissionReview accepted; larger ones are answered with a warning and no patch.',
          ),
        readTimeout: duration({ min: '100ms', max: '30s' })
          .default(5_000)
          .describe(
            'Longest a request body may take to arrive; keep it under the MutatingWebhookConfiguration’s timeoutSeconds.',
          ),
        shutdownGrace: duration({ max: '5m' })
          .default(10_000)
          .describe('How long in-flight requests may finish after SIGTERM.'),
      })
      .prefault({}),
  })
  .prefault({});

export type InjectorConfig = z.output<typeof injectorSchema>;
export type SidecarSettings = z.output<typeof sidecarSchema>;

/** The defaults, as a config file with nothing in it gives them. */
export function defaultInjectorConfig(): InjectorConfig {
  return injectorSchema.parse(undefined);
}
