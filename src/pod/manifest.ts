// Reads a pod manifest: a multi-document YAML file with one Pod (or a Job or Deployment, whose
// pod template is run once) and the ConfigMaps and Secrets it refers to. Every error carries
// file:line:col; Kubernetes fields that mean nothing here are warnings that name them.

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
import {
  configMapSchema,
  deploymentSchema,
  IGNORED_FIELDS,
  jobSchema,
  type PodSpec,
  podSchema,
  secretSchema,
} from './config.js';

export interface PodManifest {
  file: string;
  kind: 'Pod' | 'Job' | 'Deployment';
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
  z.output<typeof podSchema> | z.output<typeof jobSchema> | z.output<typeof deploymentSchema>;

export type ManifestResult =
  | { ok: true; manifest: PodManifest; warnings: ConfigIssue[] }
  | { ok: false; errors: ConfigIssue[]; warnings: ConfigIssue[] };

const WORKLOADS: Record<string, z.ZodType> = { Pod: podSchema, Job: jobSchema, Deployment: deploymentSchema };
const ignoreOpts = {
  warnUnknown: { ignored: IGNORED_FIELDS, ignoredCode: 'PILLION_ERR_POD_UNSUPPORTED_FIELD' as const },
};

export async function loadManifest(file: string, opts?: { uid?: string }): Promise<ManifestResult> {
  const text = await readText(file);
  if (typeof text !== 'string') return { ok: false, errors: [text], warnings: [] };
  return parseManifest(text, file, opts);
}

export function parseManifest(text: string, file: string, opts?: { uid?: string }): ManifestResult {
  const parsed = parseDocuments(text, file);
  if (!parsed.ok) return { ok: false, errors: parsed.issues, warnings: [] };
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
        issue(
          doc,
          ['kind'],
          'PILLION_ERR_CONFIG_MISSING_KEY',
          'every document needs a kind',
          'Pod, Job, Deployment, ConfigMap or Secret',
        ),
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
          'pillion pod runs Pod, Job and Deployment, with ConfigMap and Secret',
        ),
      );
      continue;
    }
    const v = validateDocument(doc, lc, file, schema, ignoreOpts);
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
        message: 'no Pod, Job or Deployment in the file',
      });
    }
    return { ok: false, errors: errors.sort(compareIssues), warnings: warnings.sort(compareIssues) };
  }

  const { doc, kind, value } = workload;
  const specPath: PathSegment[] = kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec'];
  const spec: PodSpec = 'template' in value.spec ? value.spec.template.spec : value.spec;
  const at = (path: PathSegment[], code: ErrorCode, message: string, hint?: string) =>
    errors.push(issue(doc, [...specPath, ...path], code, message, hint));

  // Rules Kubernetes' own validation applies, so a manifest that runs here also applies to a cluster.
  const names = new Set<string>();
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

  if (errors.length > 0)
    return { ok: false, errors: errors.sort(compareIssues), warnings: warnings.sort(compareIssues) };
  const meta = value.metadata;
  const template = 'template' in value.spec ? value.spec.template.metadata : { labels: {}, annotations: {} };
  return {
    ok: true,
    warnings: warnings.sort(compareIssues),
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
