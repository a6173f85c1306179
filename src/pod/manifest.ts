// Reads a pod manifest: a multi-document YAML file with one Pod (or a Job, Deployment, ReplicaSet,
// StatefulSet or DaemonSet, whose pod template is run once) and the ConfigMaps and Secrets it
// refers to. Every error carries file:line:col. What the API server would refuse is an error here
// too, and so is a misspelt field (kubectl's strict field validation; `strict: false` makes those
// warnings); Kubernetes fields that mean nothing here are warnings that name them.

import { randomUUID } from 'node:crypto';
import type { Document } from 'yaml';
import type { z } from 'zod';
import {
  type ConfigIssue,
  compareIssues,
  issueAt,
  type PathSegment,
  parseDocuments,
  readText,
  validateDocument,
} from '../config/index.js';
import type { ErrorCode } from '../lib/errors.js';
import { didYouMean } from '../lib/did-you-mean.js';
import {
  configMapSchema,
  type ContainerSpec,
  daemonSetSchema,
  deploymentSchema,
  IGNORED_FIELDS,
  jobSchema,
  type PodSpec,
  podSchema,
  replicaSetSchema,
  secretSchema,
  statefulSetSchema,
} from './config.js';

export type WorkloadKind = 'Pod' | 'Job' | 'Deployment' | 'ReplicaSet' | 'StatefulSet' | 'DaemonSet';

export interface PodManifest {
  file: string;
  kind: WorkloadKind;
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: PodSpec;
  configMaps: Map<string, Map<string, Buffer>>;
  secrets: Map<string, Map<string, Buffer>>;
}

type WorkloadValue =
  | z.output<typeof podSchema>
  | z.output<typeof jobSchema>
  | z.output<typeof deploymentSchema>
  | z.output<typeof statefulSetSchema>;

/**
 * Warnings are about what the manifest asks for and will not get; notes say how the manifest is
 * run here (an image is not pulled), once, whatever the number of containers they concern.
 */
export type ManifestResult =
  | { ok: true; manifest: PodManifest; warnings: ConfigIssue[]; notes: string[] }
  | { ok: false; errors: ConfigIssue[]; warnings: ConfigIssue[]; notes: string[] };

export interface ManifestOptions {
  uid?: string | undefined;
  /** Misspelt fields are errors (default), as kubectl apply's strict field validation makes them. */
  strict?: boolean | undefined;
}

const WORKLOADS: Record<string, z.ZodType> = {
  Pod: podSchema,
  Job: jobSchema,
  Deployment: deploymentSchema,
  ReplicaSet: replicaSetSchema,
  StatefulSet: statefulSetSchema,
  DaemonSet: daemonSetSchema,
};
const KINDS = 'Pod, Job, Deployment, ReplicaSet, StatefulSet and DaemonSet, with ConfigMap and Secret';

export async function loadManifest(file: string, opts?: ManifestOptions): Promise<ManifestResult> {
  const text = await readText(file);
  if (typeof text !== 'string') return { ok: false, errors: [text], warnings: [], notes: [] };
  return parseManifest(text, file, opts);
}

export function parseManifest(text: string, file: string, opts?: ManifestOptions): ManifestResult {
  const validateOpts = {
    warnUnknown: {
      ignored: IGNORED_FIELDS,
      ignoredCode: 'PILLION_ERR_POD_UNSUPPORTED_FIELD' as const,
      strict: opts?.strict ?? true,
    },
  };
  const parsed = parseDocuments(text, file);
  if (!parsed.ok) return { ok: false, errors: parsed.issues, warnings: [], notes: [] };
  const { docs, lc } = parsed;
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const issue = (
    doc: Document,
    path: PathSegment[],
    code: ErrorCode,
    message: string,
    hint?: string,
    key = false,
  ) => issueAt({ file, doc, lc }, path, code, message, hint, key);

  let workload: { doc: Document; kind: PodManifest['kind']; value: WorkloadValue } | undefined;
  const configMaps = new Map<string, Map<string, Buffer>>();
  const secrets = new Map<string, Map<string, Buffer>>();

  for (const doc of docs) {
    if (doc.contents === null) continue; // an empty document between separators
    const kind = doc.get('kind');
    if (typeof kind !== 'string') {
      errors.push(
        issue(doc, ['kind'], 'PILLION_ERR_CONFIG_MISSING_KEY', 'every document needs a kind', KINDS),
      );
      continue;
    }
    const schema =
      WORKLOADS[kind] ??
      (kind === 'ConfigMap' ? configMapSchema : kind === 'Secret' ? secretSchema : undefined);
    if (!schema) {
      warnings.push(
        issue(
          doc,
          ['kind'],
          'PILLION_ERR_POD_UNSUPPORTED_KIND',
          `${kind} documents are skipped`,
          `pillion pod runs ${KINDS}`,
        ),
      );
      continue;
    }
    const v = validateDocument(doc, lc, file, schema, validateOpts);
    warnings.push(...v.warnings);
    if (!v.ok) {
      errors.push(...v.errors);
      continue;
    }
    if (kind === 'ConfigMap') {
      const value = v.value as z.output<typeof configMapSchema>;
      const data = new Map<string, Buffer>();
      for (const [k, s] of Object.entries<string>(value.data)) data.set(k, Buffer.from(s));
      for (const [k, s] of Object.entries<string>(value.binaryData)) data.set(k, Buffer.from(s, 'base64'));
      configMaps.set(value.metadata.name, data);
    } else if (kind === 'Secret') {
      const value = v.value as z.output<typeof secretSchema>;
      const data = new Map<string, Buffer>();
      for (const [k, s] of Object.entries<string>(value.data)) data.set(k, Buffer.from(s, 'base64'));
      for (const [k, s] of Object.entries<string>(value.stringData)) data.set(k, Buffer.from(s));
      secrets.set(value.metadata.name, data);
    } else if (workload) {
      errors.push(
        issue(
          doc,
          ['kind'],
          'PILLION_ERR_POD_MULTIPLE_WORKLOADS',
          `a second workload (${kind}); one file runs one pod`,
        ),
      );
    } else {
      workload = { doc, kind: kind as PodManifest['kind'], value: v.value as WorkloadValue };
    }
  }

  if (!workload) {
    if (errors.length === 0) {
      errors.push({
        file,
        line: 1,
        col: 1,
        code: 'PILLION_ERR_POD_NO_WORKLOAD',
        path: '(root)',
        message: 'no Pod, Job, Deployment, ReplicaSet, StatefulSet or DaemonSet in the file',
      });
    }
    return {
      ok: false,
      errors: errors.sort(compareIssues),
      warnings: warnings.sort(compareIssues),
      notes: [],
    };
  }

  const { doc, kind, value } = workload;
  const specPath: PathSegment[] = kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec'];
  const spec: PodSpec = 'template' in value.spec ? (value.spec.template.spec as PodSpec) : value.spec;
  const at = (path: PathSegment[], code: ErrorCode, message: string, hint?: string) =>
    errors.push(issue(doc, [...specPath, ...path], code, message, hint));

  // Rules Kubernetes' own validation applies, so a manifest that runs here also applies to a cluster.
  const names = new Set<string>();
  const allNames = [...spec.initContainers, ...spec.containers].map((c) => c.name);
  const volumes = new Set(spec.volumes.map((v) => v.name));
  if (volumes.size !== spec.volumes.length) {
    at(['volumes'], 'PILLION_ERR_POD_DUPLICATE_NAME', 'two volumes share a name');
  }
  for (const [list, containers] of [
    ['initContainers', spec.initContainers],
    ['containers', spec.containers],
  ] as const) {
    containers.forEach((c, i) => {
      if (names.has(c.name))
        at([list, i, 'name'], 'PILLION_ERR_POD_DUPLICATE_NAME', `container name "${c.name}" is used twice`);
      names.add(c.name);
      checkPorts(c, (path, code, message, hint) => at([list, i, ...path], code, message, hint));
      checkResourceRefs(c, allNames, (path, message, hint) =>
        at([list, i, ...path], 'PILLION_ERR_CONFIG_BAD_VALUE', message, hint),
      );
      if (c.readinessProbe?.terminationGracePeriodSeconds !== undefined) {
        at(
          [list, i, 'readinessProbe', 'terminationGracePeriodSeconds'],
          'PILLION_ERR_CONFIG_BAD_VALUE',
          'readinessProbe may not set terminationGracePeriodSeconds',
          'a readiness failure never stops the container; set it on a liveness or startup probe',
        );
      }
      if (!c.command || c.command.length === 0) {
        at(
          [list, i],
          'PILLION_ERR_POD_NO_COMMAND',
          `container "${c.name}" has no command: pillion runs processes, not images`,
          "add command: [...] with what the image's entrypoint would run",
        );
      }
      c.volumeMounts.forEach((m, j) => {
        if (!volumes.has(m.name)) {
          at(
            [list, i, 'volumeMounts', j, 'name'],
            'PILLION_ERR_POD_UNKNOWN_VOLUME',
            `no volume named "${m.name}"`,
            volumes.size ? `volumes: ${[...volumes].join(', ')}` : 'declare it under spec.volumes',
          );
        }
      });
      if (list === 'containers' && c.restartPolicy) {
        at(
          [list, i, 'restartPolicy'],
          'PILLION_ERR_CONFIG_BAD_VALUE',
          'restartPolicy on a container marks a sidecar; only initContainers may have it',
        );
      }
      const sidecar = list === 'initContainers' && c.restartPolicy === 'Always';
      if (
        list === 'initContainers' &&
        !sidecar &&
        (c.startupProbe || c.readinessProbe || c.livenessProbe || c.lifecycle)
      ) {
        at(
          [list, i],
          'PILLION_ERR_POD_INIT_PROBE',
          `init container "${c.name}" may not have probes or lifecycle hooks`,
          'add restartPolicy: Always to make it a sidecar',
        );
      }
      for (const [probeName, probe] of [
        ['livenessProbe', c.livenessProbe],
        ['startupProbe', c.startupProbe],
      ] as const) {
        if (probe && probe.successThreshold !== 1) {
          at(
            [list, i, probeName, 'successThreshold'],
            'PILLION_ERR_CONFIG_OUT_OF_RANGE',
            `${probeName}.successThreshold must be 1`,
          );
        }
      }
      c.env.forEach((e, j) => {
        const ref = e.valueFrom?.configMapKeyRef ?? e.valueFrom?.secretKeyRef;
        if (!ref || ref.optional) return;
        const store = e.valueFrom?.configMapKeyRef ? configMaps : secrets;
        const what = e.valueFrom?.configMapKeyRef ? 'ConfigMap' : 'Secret';
        if (!store.get(ref.name)?.has(ref.key)) {
          at(
            [list, i, 'env', j, 'valueFrom'],
            'PILLION_ERR_POD_MISSING_REF',
            store.has(ref.name)
              ? `${what} "${ref.name}" has no key "${ref.key}"`
              : `no ${what} named "${ref.name}" in the file`,
            'add it, or set optional: true',
          );
        }
      });
      c.envFrom.forEach((e, j) => {
        const ref = e.configMapRef ?? e.secretRef;
        const store = e.configMapRef ? configMaps : secrets;
        if (ref && !ref.optional && !store.has(ref.name)) {
          at(
            [list, i, 'envFrom', j],
            'PILLION_ERR_POD_MISSING_REF',
            `no ${e.configMapRef ? 'ConfigMap' : 'Secret'} named "${ref.name}" in the file`,
            'add it, or set optional: true',
          );
        }
      });
    });
  }
  spec.volumes.forEach((v, i) => {
    v.downwardAPI?.items.forEach((item, j) => {
      const name = item.resourceFieldRef?.containerName;
      if (name !== undefined && !allNames.includes(name)) {
        const guess = didYouMean(name, allNames);
        at(
          ['volumes', i, 'downwardAPI', 'items', j, 'resourceFieldRef', 'containerName'],
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `no container named "${name}" in the pod`,
          guess ? `did you mean "${guess}"?` : `containers: ${allNames.join(', ')}`,
        );
      }
    });
    const ref = v.configMap
      ? {
          store: configMaps,
          name: v.configMap.name,
          what: 'ConfigMap',
          optional: v.configMap.optional,
          items: v.configMap.items,
        }
      : v.secret
        ? {
            store: secrets,
            name: v.secret.secretName,
            what: 'Secret',
            optional: v.secret.optional,
            items: v.secret.items,
          }
        : undefined;
    if (!ref || ref.optional) return;
    const data = ref.store.get(ref.name);
    if (!data) {
      at(
        ['volumes', i],
        'PILLION_ERR_POD_MISSING_REF',
        `no ${ref.what} named "${ref.name}" in the file`,
        'add it, or set optional: true',
      );
      return;
    }
    for (const item of ref.items ?? []) {
      if (!data.has(item.key))
        at(
          ['volumes', i],
          'PILLION_ERR_POD_MISSING_REF',
          `${ref.what} "${ref.name}" has no key "${item.key}"`,
        );
    }
  });

  const notes = imageNotes(spec);
  if (errors.length > 0)
    return { ok: false, errors: errors.sort(compareIssues), warnings: warnings.sort(compareIssues), notes };
  const meta = value.metadata;
  const template = 'template' in value.spec ? value.spec.template.metadata : { labels: {}, annotations: {} };
  return {
    ok: true,
    warnings: warnings.sort(compareIssues),
    notes,
    manifest: {
      file,
      kind,
      name: meta.name,
      namespace: meta.namespace,
      uid: opts?.uid ?? randomUUID(),
      labels: { ...meta.labels, ...template.labels },
      annotations: { ...meta.annotations, ...template.annotations },
      spec,
      configMaps,
      secrets,
    },
  };
}

type At = (path: PathSegment[], code: ErrorCode, message: string, hint?: string) => void;

// Port names are unique in a container (the API server's rule), and a probe or hook that names a
// port must find it there: the kubelet would fail that probe forever.
function checkPorts(c: ContainerSpec, at: At): void {
  const seen = new Set<string>();
  c.ports.forEach((p, j) => {
    if (p.name === undefined) return;
    if (seen.has(p.name))
      at(['ports', j, 'name'], 'PILLION_ERR_POD_DUPLICATE_NAME', `port name "${p.name}" is used twice`);
    seen.add(p.name);
  });
  const named = c.ports.flatMap((p) => (p.name ? [p.name] : []));
  const refs: [PathSegment[], number | string | undefined][] = [];
  for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
    const probe = c[kind];
    refs.push(
      [[kind, 'httpGet', 'port'], probe?.httpGet?.port],
      [[kind, 'tcpSocket', 'port'], probe?.tcpSocket?.port],
    );
  }
  for (const hook of ['postStart', 'preStop'] as const) {
    refs.push([['lifecycle', hook, 'httpGet', 'port'], c.lifecycle?.[hook]?.httpGet?.port]);
  }
  for (const [path, port] of refs) {
    if (typeof port !== 'string' || /^\d+$/.test(port) || named.includes(port)) continue;
    const guess = didYouMean(port, named);
    at(
      path,
      'PILLION_ERR_POD_UNKNOWN_PORT',
      `no port named "${port}" in container "${c.name}"`,
      guess
        ? `did you mean "${guess}"?`
        : named.length
          ? `its ports: ${named.join(', ')}`
          : `declare it: ports: [{ name: ${port}, containerPort: <number> }]`,
    );
  }
}

function checkResourceRefs(
  c: ContainerSpec,
  containers: string[],
  at: (path: PathSegment[], message: string, hint?: string) => void,
): void {
  c.env.forEach((e, j) => {
    const name = e.valueFrom?.resourceFieldRef?.containerName;
    if (name === undefined || containers.includes(name)) return;
    const guess = didYouMean(name, containers);
    at(
      ['env', j, 'valueFrom', 'resourceFieldRef', 'containerName'],
      `no container named "${name}" in the pod`,
      guess ? `did you mean "${guess}"?` : `containers: ${containers.join(', ')}`,
    );
  });
}

// Every container of a manifest written for a cluster names an image; saying once how that is
// handled here is enough (a warning per container would only teach people to ignore warnings).
function imageNotes(spec: PodSpec): string[] {
  const all = [...spec.initContainers, ...spec.containers];
  const images = all.filter((c) => c.image !== undefined).length;
  if (images === 0 && !spec.imagePullSecrets) return [];
  return [
    `images are not pulled: each container runs its command on this host (${images} of ${all.length} container${all.length === 1 ? '' : 's'} name${images === 1 ? 's' : ''} an image, shown by pillion pod describe)`,
  ];
}
