// `pillion inject` on a file: every workload of a multi-document file or a List gets pillion, every
// other document passes through as written. The YAML is edited in place (the `yaml` document API),
// so comments, key order and quoting of what injection does not touch are kept.

import { type Document, Scalar } from 'yaml';
import { type ConfigIssue, issueAt, parseDocuments, type PathSegment } from '../config/index.js';
import type { ErrorCode } from '../lib/errors.js';
import { ANNOTATIONS } from './annotations.js';
import type { InjectorConfig } from './config.js';
import { injectTemplate, type PodTemplate } from './injector.js';
import { hasModel, schemaProblems } from './models.js';
import { CONFIG_KEY } from './sidecar.js';
import { updateNode } from './yaml-update.js';

/** Where each kind keeps its pod template. */
export const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};
const API_VERSIONS: Record<string, string> = {
  Pod: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  ReplicaSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
};

export interface SidecarConfigFile {
  /** pillion.yaml as written, validated by the caller. */
  text: string;
}

export interface InjectFileOptions {
  config: InjectorConfig;
  /** The sidecar's config: a ConfigMap holding it is added (or updated) beside the workloads. */
  sidecarConfig?: SidecarConfigFile | undefined;
  /** The admin port of that config, for the /quitquitquit wiring of Jobs. */
  adminPort?: number | undefined;
}

export interface WorkloadReport {
  kind: string;
  name: string;
  /** injected, or skipped: why. */
  outcome: string;
}

export type InjectFileResult =
  { ok: true; output: string; report: WorkloadReport[] } | { ok: false; errors: ConfigIssue[] };

export async function injectManifests(
  text: string,
  file: string,
  opts: InjectFileOptions,
): Promise<InjectFileResult> {
  const parsed = parseDocuments(text, file);
  if (!parsed.ok) return { ok: false, errors: parsed.issues };
  const { docs, lc } = parsed;
  const errors: ConfigIssue[] = [];
  const report: WorkloadReport[] = [];
  const namespaces = new Set<string | undefined>();
  const configMapName = opts.config.sidecar.configMap;
  const changed = new Set<Document>();

  const at = (
    doc: Document,
    path: PathSegment[],
    code: ErrorCode,
    message: string,
    hint?: string,
    key = false,
  ) => errors.push(issueAt({ file, doc, lc }, path, code, message, hint, key));

  const visit = async (doc: Document, base: PathSegment[], object: unknown): Promise<void> => {
    if (typeof object !== 'object' || object === null || Array.isArray(object)) return;
    const o = object as Record<string, unknown>;
    const kind = o.kind;
    if (kind === 'List' && Array.isArray(o.items)) {
      for (let i = 0; i < o.items.length; i++) await visit(doc, [...base, 'items', i], o.items[i]);
      return;
    }
    if (typeof kind !== 'string' || !(kind in TEMPLATE_PATHS)) return; // another kind: passed through
    if (!hasModel(o.apiVersion, kind)) {
      at(
        doc,
        [...base, 'apiVersion'],
        'PILLION_ERR_INJECT_MANIFEST',
        `pillion injects ${kind} of apiVersion ${API_VERSIONS[kind]}, not ${String(o.apiVersion)}`,
        `write apiVersion: ${API_VERSIONS[kind]}`,
      );
      return;
    }
    const problems = await schemaProblems(o);
    for (const p of problems)
      at(
        doc,
        [...base, ...p.path],
        'PILLION_ERR_INJECT_MANIFEST',
        `${kind}: ${p.message}`,
        'the API server would refuse it',
      );
    if (problems.length > 0) return;
    const meta = (o.metadata ?? {}) as { name?: string; namespace?: string };
    const templatePath = TEMPLATE_PATHS[kind]!;
    const template = getIn(o, templatePath) as PodTemplate;
    const outcome = injectTemplate(template, opts.config, {
      kind,
      namespace: meta.namespace,
      adminPort: opts.adminPort,
    });
    const name = meta.name ?? '(unnamed)';
    if (outcome.status === 'invalid') {
      for (const p of outcome.problems)
        at(
          doc,
          [...base, ...templatePath, 'metadata', 'annotations', p.key],
          'PILLION_ERR_INJECT_ANNOTATION',
          p.message,
          p.hint,
          true,
        );
      return;
    }
    if (outcome.status === 'skipped') {
      report.push({ kind, name, outcome: `skipped: ${outcome.message}` });
      return;
    }
    const mode = outcome.template.spec.initContainers?.some(
      (c) => c.name === 'pillion' && c.restartPolicy === 'Always',
    )
      ? 'native sidecar'
      : 'legacy sidecar';
    report.push({ kind, name, outcome: `injected (${mode})` });
    const uses = outcome.template.spec.volumes?.some((v) => v.configMap?.name === configMapName);
    if (uses) namespaces.add(meta.namespace);
    if (!outcome.changed) return; // injected already, as it would be now
    const path = [...base, ...templatePath];
    const next = templatePath.length === 0 ? { ...o, ...outcome.template } : outcome.template;
    replaceAt(doc, path, next);
    changed.add(doc);
  };

  for (const doc of docs) {
    if (doc.contents === null) continue;
    await visit(doc, [], doc.toJS({ maxAliasCount: 100 }));
  }
  if (errors.length > 0) return { ok: false, errors };

  const out = [...docs];
  if (opts.sidecarConfig) {
    for (const ns of namespaces) {
      const existing = docs.find((d) => {
        const m = d.toJS() as Record<string, unknown> | null;
        const meta = (m?.metadata ?? {}) as Record<string, unknown>;
        return m?.kind === 'ConfigMap' && meta.name === configMapName && meta.namespace === ns;
      });
      if (existing) {
        const value = new Scalar(opts.sidecarConfig.text);
        value.type = Scalar.BLOCK_LITERAL;
        if (existing.getIn(['data', CONFIG_KEY]) !== opts.sidecarConfig.text) {
          existing.setIn(['data', CONFIG_KEY], value);
          changed.add(existing);
        }
      } else out.unshift(configMapDocument(docs[0]!, configMapName, ns, opts.sidecarConfig.text));
    }
  }
  return { ok: true, output: render(out, text, docs, changed), report };
}

/** The ConfigMap that holds the sidecar's pillion.yaml. */
function configMapDocument(
  like: Document,
  name: string,
  namespace: string | undefined,
  text: string,
): Document {
  const doc = like.clone();
  doc.commentBefore = ` pillion's config, mounted at /etc/pillion by the injected sidecar (${ANNOTATIONS.config} names another)`;
  doc.comment = null;
  const data = new Scalar(text);
  data.type = Scalar.BLOCK_LITERAL;
  doc.contents = doc.createNode({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'pillion' },
    },
    data: { [CONFIG_KEY]: data },
  });
  return doc;
}

/** The documents: those injection did not change exactly as they were written, the others re-rendered. */
function render(out: Document[], text: string, docs: Document[], changed: Set<Document>): string {
  const source = new Map(
    docs.map((d, i) => [
      d,
      text.slice(i === 0 ? 0 : docs[i - 1]!.range![2], i === docs.length - 1 ? text.length : d.range![2]),
    ]),
  );
  let result = '';
  for (const d of out) {
    const original = source.get(d);
    let s = original !== undefined && !changed.has(d) ? original : d.toString({ lineWidth: 0 });
    if (result !== '' && !/^(\s*#.*\n)*\s*---/.test(s)) s = `---\n${s}`;
    if (!s.endsWith('\n')) s += '\n';
    result += s;
  }
  return result;
}

function replaceAt(doc: Document, path: PathSegment[], value: unknown): void {
  const node = path.length === 0 ? doc.contents : doc.getIn(path, true);
  const updated = updateNode(doc, node, value);
  if (updated === node) return;
  if (path.length === 0) doc.contents = updated as Document['contents'];
  else doc.setIn(path, updated);
}

function getIn(o: unknown, path: readonly PathSegment[]): unknown {
  let v = o;
  for (const seg of path) v = (v as Record<string | number, unknown> | undefined)?.[seg];
  if (path.length === 0) {
    const { metadata, spec } = o as Record<string, unknown>;
    return { ...(metadata !== undefined ? { metadata } : {}), spec };
  }
  return v;
}
