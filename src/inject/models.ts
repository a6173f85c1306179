// The Kubernetes API schemas of the kinds pillion injects, from kubernetes-models (generated from
// the API's OpenAPI document): `pillion inject` checks what it reads against them, so a manifest
// the API server would refuse is an error at its line:col rather than an injected mistake.

export interface SchemaProblem {
  /** Where in the object, as path segments (spec, template, spec, containers, 0, ...). */
  path: (string | number)[];
  message: string;
}

interface Model {
  validate(): void;
}
type ModelClass = new (data: Record<string, unknown>) => Model;

/** apiVersion/kind → the model's module and export. */
const MODELS: Record<string, () => Promise<ModelClass>> = {
  'v1/Pod': async () => (await import('kubernetes-models/v1/Pod')).Pod as unknown as ModelClass,
  'v1/ConfigMap': async () =>
    (await import('kubernetes-models/v1/ConfigMap')).ConfigMap as unknown as ModelClass,
  'apps/v1/Deployment': async () =>
    (await import('kubernetes-models/apps/v1/Deployment')).Deployment as unknown as ModelClass,
  'apps/v1/StatefulSet': async () =>
    (await import('kubernetes-models/apps/v1/StatefulSet')).StatefulSet as unknown as ModelClass,
  'apps/v1/DaemonSet': async () =>
    (await import('kubernetes-models/apps/v1/DaemonSet')).DaemonSet as unknown as ModelClass,
  'apps/v1/ReplicaSet': async () =>
    (await import('kubernetes-models/apps/v1/ReplicaSet')).ReplicaSet as unknown as ModelClass,
  'batch/v1/Job': async () => (await import('kubernetes-models/batch/v1/Job')).Job as unknown as ModelClass,
  'batch/v1/CronJob': async () =>
    (await import('kubernetes-models/batch/v1/CronJob')).CronJob as unknown as ModelClass,
};

export function hasModel(apiVersion: unknown, kind: unknown): boolean {
  return `${String(apiVersion)}/${String(kind)}` in MODELS;
}

/** Every way the object breaks its kind's API schema; empty when it is valid. */
export async function schemaProblems(object: Record<string, unknown>): Promise<SchemaProblem[]> {
  const load = MODELS[`${String(object.apiVersion)}/${String(object.kind)}`];
  if (!load)
    return [
      { path: ['kind'], message: `no API schema for ${String(object.apiVersion)} ${String(object.kind)}` },
    ];
  const Model = await load();
  try {
    new Model(object).validate();
    return [];
  } catch (err) {
    const errors = (
      err as { errors?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] }
    ).errors;
    if (!errors) throw err;
    return errors.map((e) => {
      const path = e.instancePath
        .split('/')
        .slice(1)
        .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
        .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
      const missing = e.params?.missingProperty;
      return {
        path,
        message: typeof missing === 'string' ? `${missing} is required` : (e.message ?? 'invalid'),
      };
    });
  }
}
