// Schemas of the Kubernetes objects `pillion pod` runs: Pod, and Job, Deployment, ReplicaSet,
// StatefulSet and DaemonSet (whose pod template is run once), with ConfigMap and Secret. The subset
// of the Pod spec that means something for plain processes on one host, validated as the API server
// validates it; Kubernetes fields outside it are warned about by name (IGNORED_FIELDS), Kubernetes
// features that would change what runs and are not supported are errors that say so, and anything
// else is a misspelt field. Defaults are Kubernetes' own.

import { z } from 'zod';
import { addPillionIssue } from '../config/index.js';
import { parseQuantity } from './quantity.js';
import { RESOURCE_FIELDS, validDivisor } from './resources.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dnsLabel = () =>
  z.string().max(63).regex(DNS_LABEL, { message: 'must be a lowercase RFC 1123 label (a-z, 0-9, "-")' });
const dnsSubdomain = () =>
  z
    .string()
    .max(253)
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { message: 'must be a lowercase RFC 1123 subdomain' });

const noNul = () => z.string().refine((v) => !v.includes('\0'), { message: 'may not contain a NUL byte' });

const intOrString = z.union([z.number().int().min(1).max(65535), z.string().min(1)]);

const quantity = z.union([z.string(), z.number()]).superRefine((q, ctx) => {
  const r = parseQuantity(q);
  if (!r.ok) addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', r.reason);
});

/** A Kubernetes field this runner does not support, and that would change what runs: an error. */
const unsupported = (what: string, instead?: string) =>
  z
    .unknown()
    .superRefine((_v, ctx) =>
      addPillionIssue(ctx, 'PILLION_ERR_POD_UNSUPPORTED', `${what} not supported here`, instead),
    );

const keyRef = z.object({
  name: z.string().min(1),
  key: z.string().min(1),
  optional: z.boolean().default(false),
});

const FIELD_PATHS = [
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'metadata.labels',
  'metadata.annotations',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.podIP',
  'status.podIPs',
  'status.hostIP',
];
const fieldRef = z.object({
  apiVersion: z.string().optional(),
  fieldPath: z.string().superRefine((p, ctx) => {
    if (!FIELD_PATHS.includes(p) && !/^metadata\.(labels|annotations)\['[^']+'\]$/.test(p)) {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `fieldPath "${p}" is not supported`,
        `use one of ${FIELD_PATHS.join(', ')}, or metadata.labels['key']`,
      );
    }
  }),
});

// A container's limit or request (downward API); `containerName` defaults to the container itself
// in env and is required in a downwardAPI volume, as the API server requires.
const resourceFieldRef = z
  .object({
    containerName: z.string().optional(),
    resource: z.string().superRefine((r, ctx) => {
      if ((RESOURCE_FIELDS as readonly string[]).includes(r)) return;
      const known = /^(limits|requests)\.(ephemeral-storage|hugepages-.+)$/.test(r);
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        known ? `resource "${r}" is not supported here` : `resource "${r}" is not a container resource`,
        `use one of ${RESOURCE_FIELDS.join(', ')}`,
      );
    }),
    divisor: quantity.optional(),
  })
  .superRefine((f, ctx) => {
    if (f.divisor === undefined || !(RESOURCE_FIELDS as readonly string[]).includes(f.resource)) return;
    if (!validDivisor(f.resource, f.divisor)) {
      const cpu = f.resource.endsWith('.cpu');
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `divisor ${JSON.stringify(f.divisor)} is not allowed for ${f.resource}`,
        cpu
          ? 'the cpu divisors are 1m and 1'
          : 'the memory divisors are 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei',
        ['divisor'],
      );
    }
  });

// Kubernetes' IsEnvVarName: letters, digits, "_", "-" and ".", not starting with a digit.
const envVarName = () =>
  z.string().regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/, {
    message: 'must be letters, digits, "_", "-" or "." and may not start with a digit',
  });

const envVar = z
  .object({
    name: envVarName(),
    value: z.string().optional(),
    valueFrom: z
      .object({
        configMapKeyRef: keyRef.optional(),
        secretKeyRef: keyRef.optional(),
        fieldRef: fieldRef.optional(),
        resourceFieldRef: resourceFieldRef.optional(),
      })
      .optional(),
  })
  .superRefine((e, ctx) => {
    if (e.valueFrom && Object.values(e.valueFrom).filter(Boolean).length !== 1) {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'valueFrom needs exactly one of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef',
        undefined,
        ['valueFrom'],
      );
    }
  });

const envFromSource = z.object({
  prefix: z.string().default(''),
  configMapRef: z.object({ name: z.string().min(1), optional: z.boolean().default(false) }).optional(),
  secretRef: z.object({ name: z.string().min(1), optional: z.boolean().default(false) }).optional(),
});

const execAction = z.object({ command: z.array(z.string()).min(1) });
const httpGetAction = z.object({
  path: z.string().default('/'),
  port: intOrString,
  host: z.string().optional(),
  scheme: z.enum(['HTTP', 'HTTPS']).default('HTTP'),
  httpHeaders: z.array(z.object({ name: z.string().min(1), value: z.string() })).default([]),
});
const tcpSocketAction = z.object({ port: intOrString, host: z.string().optional() });

export const probeSchema = z
  .object({
    exec: execAction.optional(),
    httpGet: httpGetAction.optional(),
    tcpSocket: tcpSocketAction.optional(),
    grpc: unsupported(
      'grpc probes are',
      'use an exec probe running grpc_health_probe, or tcpSocket',
    ).optional(),
    initialDelaySeconds: z.number().int().min(0).default(0),
    periodSeconds: z.number().int().min(1).default(10),
    timeoutSeconds: z.number().int().min(1).default(1),
    successThreshold: z.number().int().min(1).default(1),
    failureThreshold: z.number().int().min(1).default(3),
    terminationGracePeriodSeconds: z.number().int().min(1).optional(),
  })
  .superRefine((p, ctx) => {
    const n = [p.exec, p.httpGet, p.tcpSocket].filter(Boolean).length;
    if (n !== 1 && p.grpc === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'a probe needs exactly one of exec, httpGet, tcpSocket',
      );
  });

const handlerSchema = z
  .object({
    exec: execAction.optional(),
    httpGet: httpGetAction.optional(),
    sleep: z.object({ seconds: z.number().int().min(0) }).optional(),
  })
  .superRefine((h, ctx) => {
    if ([h.exec, h.httpGet, h.sleep].filter(Boolean).length !== 1) {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'a lifecycle handler needs exactly one of exec, httpGet, sleep',
      );
    }
  });

// IANA_SVC_NAME, as Kubernetes validates port names: at most 15 characters, lowercase letters,
// digits and "-", at least one letter, no "--", no "-" at either end.
const portName = () =>
  z
    .string()
    .max(15)
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, { message: 'must be lowercase letters, digits and "-"' })
    .refine((n) => /[a-z]/.test(n), { message: 'must contain at least one letter' })
    .refine((n) => !n.includes('--'), { message: 'may not contain "--"' });

const containerPort = z.object({
  name: portName().optional(),
  containerPort: z.number().int().min(1).max(65535),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'),
});

export const containerSchema = z.object({
  name: dnsLabel(),
  // Never pulled: the command runs on this host. Kept to show in describe, and validated as the
  // API server does, so the manifest still applies to a cluster.
  image: z.string().optional(),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  // Declared ports name the numbers probes and hooks may refer to (`port: http`).
  ports: z.array(containerPort).default([]),
  command: z.array(noNul()).optional(),
  args: z.array(noNul()).default([]),
  workingDir: z.string().optional(),
  env: z.array(envVar).default([]),
  envFrom: z.array(envFromSource).default([]),
  volumeMounts: z
    .array(
      z.object({
        name: z.string().min(1),
        mountPath: z.string().startsWith('/', { message: 'mountPath must be absolute' }),
        subPath: z
          .string()
          .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
            message: 'subPath must be a relative path without ".." (it may not leave its volume)',
          })
          .optional(),
        subPathExpr: unsupported('subPathExpr is', 'use subPath').optional(),
        readOnly: z.boolean().default(false),
      }),
    )
    .default([]),
  startupProbe: probeSchema.optional(),
  readinessProbe: probeSchema.optional(),
  livenessProbe: probeSchema.optional(),
  lifecycle: z.object({ postStart: handlerSchema.optional(), preStop: handlerSchema.optional() }).optional(),
  restartPolicy: z.literal('Always').optional(),
  restartPolicyRules: unsupported('restartPolicyRules are', "use the pod's restartPolicy").optional(),
  resources: z
    .object({
      limits: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).optional(),
      requests: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).optional(),
    })
    .optional(),
});

const keyToPath = z.object({
  key: z.string().min(1),
  path: z.string().min(1),
  mode: z.number().int().min(0).max(0o777).optional(),
});

// Volume sources of Kubernetes a pod of processes cannot have (persistent, projected, cloud, ...).
const UNSUPPORTED_VOLUMES = [
  'persistentVolumeClaim',
  'projected',
  'ephemeral',
  'csi',
  'image',
  'nfs',
  'iscsi',
  'fc',
  'rbd',
  'cephfs',
  'glusterfs',
  'gitRepo',
  'flexVolume',
  'azureDisk',
  'azureFile',
  'awsElasticBlockStore',
  'gcePersistentDisk',
  'cinder',
  'vsphereVolume',
  'portworxVolume',
  'photonPersistentDisk',
  'quobyte',
  'scaleIO',
  'storageos',
  'flocker',
];

const volumeSchema = z
  .object({
    name: dnsLabel(),
    emptyDir: z
      .object({ medium: z.enum(['', 'Memory']).default(''), sizeLimit: quantity.optional() })
      .optional(),
    hostPath: z
      .object({
        path: z.string().startsWith('/', { message: 'hostPath.path must be absolute' }),
        type: z
          .enum([
            '',
            'DirectoryOrCreate',
            'Directory',
            'FileOrCreate',
            'File',
            'Socket',
            'CharDevice',
            'BlockDevice',
          ])
          .default(''),
      })
      .optional(),
    configMap: z
      .object({
        name: z.string().min(1),
        items: z.array(keyToPath).optional(),
        defaultMode: z.number().int().min(0).max(0o777).default(0o644),
        optional: z.boolean().default(false),
      })
      .optional(),
    secret: z
      .object({
        secretName: z.string().min(1),
        items: z.array(keyToPath).optional(),
        defaultMode: z.number().int().min(0).max(0o777).default(0o644),
        optional: z.boolean().default(false),
      })
      .optional(),
    downwardAPI: z
      .object({
        items: z.array(
          z
            .object({
              path: z.string().min(1),
              fieldRef: fieldRef.optional(),
              resourceFieldRef: resourceFieldRef.optional(),
              mode: z.number().int().min(0).max(0o777).optional(),
            })
            .superRefine((i, ctx) => {
              if ((i.fieldRef === undefined) === (i.resourceFieldRef === undefined)) {
                addPillionIssue(
                  ctx,
                  'PILLION_ERR_CONFIG_BAD_VALUE',
                  'an item needs exactly one of fieldRef, resourceFieldRef',
                );
              } else if (i.resourceFieldRef && !i.resourceFieldRef.containerName) {
                addPillionIssue(
                  ctx,
                  'PILLION_ERR_CONFIG_MISSING_KEY',
                  'a resourceFieldRef in a volume needs containerName',
                  'name the container whose resources the file shows',
                  ['resourceFieldRef'],
                );
              }
            }),
        ),
        defaultMode: z.number().int().min(0).max(0o777).default(0o644),
      })
      .optional(),
    ...Object.fromEntries(
      UNSUPPORTED_VOLUMES.map((t) => [
        t,
        unsupported(
          `${t} volumes are`,
          'emptyDir, hostPath, configMap, secret and downwardAPI are',
        ).optional(),
      ]),
    ),
  })
  .superRefine((v, ctx) => {
    if (UNSUPPORTED_VOLUMES.some((t) => (v as Record<string, unknown>)[t] !== undefined)) return;
    const n = [v.emptyDir, v.hostPath, v.configMap, v.secret, v.downwardAPI].filter(Boolean).length;
    if (n !== 1) {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `volume "${v.name}" needs exactly one source`,
        'emptyDir, hostPath, configMap, secret or downwardAPI',
      );
    }
  });

export const podSpecSchema = z.object({
  imagePullSecrets: z.array(z.object({ name: z.string().min(1) })).optional(),
  // The API server refuses them on create: they are added to a running pod by kubectl debug.
  ephemeralContainers: unsupported(
    'ephemeralContainers are',
    'they cannot be set when a pod is created',
  ).optional(),
  initContainers: z.array(containerSchema).default([]),
  containers: z.array(containerSchema).min(1),
  volumes: z.array(volumeSchema).default([]),
  restartPolicy: z.enum(['Always', 'OnFailure', 'Never']).default('Always'),
  terminationGracePeriodSeconds: z.number().int().min(0).default(30),
});

const metadataSchema = z.object({
  name: dnsSubdomain(),
  namespace: dnsLabel().default('default'),
  labels: z.record(z.string(), z.string()).default({}),
  annotations: z.record(z.string(), z.string()).default({}),
});

export const podSchema = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('Pod'),
  metadata: metadataSchema,
  spec: podSpecSchema,
});

const templateSchema = z.object({
  metadata: z
    .object({
      labels: z.record(z.string(), z.string()).default({}),
      annotations: z.record(z.string(), z.string()).default({}),
    })
    .prefault({}),
  spec: podSpecSchema,
});

export const jobSchema = z.object({
  apiVersion: z.literal('batch/v1'),
  kind: z.literal('Job'),
  metadata: metadataSchema,
  spec: z.object({
    template: templateSchema.superRefine((t, ctx) => {
      if (t.spec.restartPolicy === 'Always') {
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          "a Job's pod template must have restartPolicy OnFailure or Never",
          undefined,
          ['spec', 'restartPolicy'],
        );
      }
    }),
  }),
});

// Deployments, ReplicaSets, StatefulSets and DaemonSets keep their pods running: the API server
// accepts no restartPolicy but Always in their templates.
const alwaysTemplate = (kind: string) =>
  templateSchema.superRefine((t, ctx) => {
    if (t.spec.restartPolicy !== 'Always') {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `a ${kind}'s pod template must have restartPolicy Always`,
        `the API server refuses "${t.spec.restartPolicy}" here; a Job runs a pod to completion`,
        ['spec', 'restartPolicy'],
      );
    }
  });

const appsWorkload = <K extends string>(kind: K, extra: z.ZodRawShape = {}) =>
  z.object({
    apiVersion: z.literal('apps/v1'),
    kind: z.literal(kind),
    metadata: metadataSchema,
    spec: z.object({ template: alwaysTemplate(kind), ...extra }),
  });

export const deploymentSchema = appsWorkload('Deployment');
export const replicaSetSchema = appsWorkload('ReplicaSet');
export const daemonSetSchema = appsWorkload('DaemonSet');
export const statefulSetSchema = appsWorkload('StatefulSet', {
  volumeClaimTemplates: unsupported(
    'volumeClaimTemplates (persistent volumes) are',
    'use an emptyDir or a hostPath volume of the same name',
  ).optional(),
});

// Kubernetes allows these characters in ConfigMap and Secret keys; anything else (a "/" or "..")
// could place a projected file outside its volume.
const dataKey = z
  .string()
  .regex(/^[-._a-zA-Z0-9]+$/, { message: 'keys are letters, digits, "-", "_" and "."' })
  .refine((k) => k !== '.' && k !== '..', { message: 'a key may not be "." or ".."' });

// Labels and annotations are read as a pod's are (`pillion inject` labels the ConfigMap it makes).
export const configMapSchema = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('ConfigMap'),
  metadata: metadataSchema,
  data: z.record(dataKey, z.string()).default({}),
  binaryData: z.record(dataKey, z.string().base64()).default({}),
});

export const secretSchema = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('Secret'),
  metadata: metadataSchema,
  type: z.string().default('Opaque'),
  data: z.record(dataKey, z.string().base64()).default({}),
  stringData: z.record(dataKey, z.string()).default({}),
});

export type ContainerSpec = z.output<typeof containerSchema>;
export type ProbeSpec = z.output<typeof probeSchema>;
export type HandlerSpec = z.output<typeof handlerSchema>;
export type VolumeSpec = z.output<typeof volumeSchema>;
export type PodSpec = z.output<typeof podSpecSchema>;

/**
 * Kubernetes fields that mean nothing for processes on one host. They are accepted, and a warning
 * says why each is ignored, so a manifest written for a cluster runs here unchanged.
 */
export const IGNORED_FIELDS = new Map<string, string>([
  ['hostPort', 'processes share the host network: a containerPort is already the host port'],
  ['hostIP', 'processes share the host network'],
  ['securityContext', 'processes run as the user that runs pillion'],
  ['serviceAccountName', 'there is no API server to authenticate to'],
  ['automountServiceAccountToken', 'there is no API server to authenticate to'],
  ['nodeSelector', 'there is one node: this host'],
  ['nodeName', 'there is one node: this host'],
  ['affinity', 'there is one node: this host'],
  ['tolerations', 'there is one node: this host'],
  ['priorityClassName', 'there is no scheduler'],
  ['schedulerName', 'there is no scheduler'],
  ['dnsPolicy', 'processes use the host resolver'],
  ['hostNetwork', 'processes always share the host network'],
  ['terminationMessagePath', 'the last log lines are in pillion pod logs'],
  ['terminationMessagePolicy', 'the last log lines are in pillion pod logs'],
  ['stdin', 'containers run without a terminal'],
  ['tty', 'containers run without a terminal'],
  ['requests', 'requests matter to a scheduler; limits are enforced'],
  ['replicas', 'the pod template is run once'],
  ['selector', 'the pod template is run once'],
  ['strategy', 'the pod template is run once'],
  ['backoffLimit', 'the pod template is run once, with its restartPolicy'],
  ['completions', 'the pod template is run once'],
  ['parallelism', 'the pod template is run once'],
  ['activeDeadlineSeconds', 'not supported'],
  ['ttlSecondsAfterFinished', 'finished pods stay until pillion pod down'],
  ['status', 'status is written by the runner'],
  ['creationTimestamp', 'set by the runner'],
  ['resourceVersion', 'set by the runner'],
  ['uid', 'set by the runner'],
  ['generation', 'set by the runner'],
  ['immutable', 'not enforced'],
  // Pod spec
  ['serviceAccount', 'there is no API server to authenticate to'],
  ['topologySpreadConstraints', 'there is one node: this host'],
  ['priority', 'there is no scheduler'],
  ['preemptionPolicy', 'there is no scheduler'],
  ['schedulingGates', 'there is no scheduler'],
  ['runtimeClassName', 'there is no container runtime: containers are processes'],
  ['overhead', 'there is no container runtime: containers are processes'],
  ['os', 'containers run on this host, whatever its OS'],
  ['dnsConfig', 'processes use the host resolver'],
  ['hostAliases', 'processes use the host resolver and /etc/hosts'],
  ['hostname', 'processes see the host name; HOSTNAME is the pod name'],
  ['subdomain', 'processes see the host name; HOSTNAME is the pod name'],
  ['setHostnameAsFQDN', 'processes see the host name; HOSTNAME is the pod name'],
  ['hostPID', 'processes always share the host PID namespace'],
  ['hostIPC', 'processes always share the host IPC namespace'],
  ['hostUsers', 'there is no user namespace'],
  ['shareProcessNamespace', 'processes always see each other'],
  ['enableServiceLinks', 'there are no Services to link'],
  ['readinessGates', 'there is no controller to set their conditions'],
  ['resourceClaims', 'there is no dynamic resource allocation'],
  ['resources', 'pod-level resources are not enforced; set limits on each container'],
  // Containers
  ['stdinOnce', 'containers run without a terminal'],
  ['resizePolicy', 'resources are fixed for the life of the pod'],
  ['claims', 'there is no dynamic resource allocation'],
  ['volumeDevices', 'there are no block-device volumes'],
  ['mountPropagation', 'each container has its own private mounts'],
  ['recursiveReadOnly', 'readOnly mounts are read-only; their submounts are the volumes mounted there'],
  ['stopSignal', 'containers are stopped with SIGTERM, then SIGKILL'],
  // Object metadata
  ['generateName', 'the pod has its metadata.name'],
  ['finalizers', 'there is no API server'],
  ['ownerReferences', 'there is no API server'],
  ['managedFields', 'set by the API server'],
  ['selfLink', 'set by the API server'],
  ['deletionTimestamp', 'set by the API server'],
  ['deletionGracePeriodSeconds', 'set by the API server'],
  // Workloads
  ['minReadySeconds', 'the pod template is run once'],
  ['revisionHistoryLimit', 'the pod template is run once'],
  ['progressDeadlineSeconds', 'the pod template is run once'],
  ['paused', 'the pod template is run once'],
  ['updateStrategy', 'the pod template is run once'],
  ['podManagementPolicy', 'the pod template is run once'],
  ['serviceName', 'there are no Services'],
  ['ordinals', 'the pod template is run once'],
  ['persistentVolumeClaimRetentionPolicy', 'there are no persistent volumes'],
  ['completionMode', 'the pod template is run once, with its restartPolicy'],
  ['backoffLimitPerIndex', 'the pod template is run once, with its restartPolicy'],
  ['maxFailedIndexes', 'the pod template is run once, with its restartPolicy'],
  ['podFailurePolicy', 'the pod template is run once, with its restartPolicy'],
  ['podReplacementPolicy', 'the pod template is run once, with its restartPolicy'],
  ['successPolicy', 'the pod template is run once, with its restartPolicy'],
  ['manualSelector', 'the pod template is run once'],
  ['suspend', 'the pod template is run once, now'],
  ['managedBy', 'there is no controller'],
]);
