// The injector: one pod template in, the same template with pillion added out, or the reason it
// was left alone. `pillion inject` and the webhook both call it, so a manifest injected by hand
// and a pod injected in the cluster get the same sidecar. It works on plain JSON and never
// mutates its input.
//
// As Istio's injector does it: the status annotation lists what an earlier injection added, which
// is stripped first, so injecting twice gives what injecting once gives; a container the user
// named `pillion` is an overlay on the injected one (its fields win), and is kept in the status so
// that a re-injection applies it again.

import type { IContainer, IPodSpec, IVolume } from 'kubernetes-models/v1';
import { ANNOTATIONS, type AnnotationProblem, type PodOptions, podOptions } from './annotations.js';
import type { InjectorConfig } from './config.js';
import { buildSidecar, QUIT_ENV, SIDECAR_NAME, VOLUMES } from './sidecar.js';

export interface PodTemplate {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  } & Record<string, unknown>;
  spec: IPodSpec;
}

export type SkipReason = 'opted-out' | 'host-network' | 'not-opted-in' | 'excluded-namespace';

export type InjectOutcome =
  | { status: 'injected'; template: PodTemplate; changed: boolean }
  | { status: 'skipped'; reason: SkipReason; message: string }
  | { status: 'invalid'; problems: AnnotationProblem[] };

export interface InjectContext {
  /** The workload's kind: Jobs and CronJobs in legacy mode get /quitquitquit wiring. */
  kind: string;
  /** The namespace the pod is created in (the webhook knows it; a manifest may say it). */
  namespace?: string | undefined;
  /** The admin port of the sidecar's config, when the config is known (inject --config). */
  adminPort?: number | undefined;
}

/** What the status annotation records: what to strip before injecting again. */
export interface InjectionStatus {
  version: 1;
  initContainers: string[];
  containers: string[];
  volumes: string[];
  /** Env variables added to the app's containers. */
  env: string[];
  /** The user's own `pillion` container, applied over the injected one. */
  overlay?: IContainer;
}

const STATUS_VERSION = 1;

/** Whether to inject this pod, Istio's injectRequired(): the pod's label, then its annotation, then policy. */
export function decide(
  template: PodTemplate,
  config: InjectorConfig,
  ctx: InjectContext,
): { inject: true } | { inject: false; reason: SkipReason; message: string } {
  const labels = template.metadata?.labels ?? {};
  const annotations = template.metadata?.annotations ?? {};
  if (template.spec.hostNetwork === true)
    return {
      inject: false,
      reason: 'host-network',
      message: 'the pod uses the host network: interception would capture the node',
    };
  if (ctx.namespace !== undefined && config.injection.excludeNamespaces.includes(ctx.namespace))
    return {
      inject: false,
      reason: 'excluded-namespace',
      message: `namespace ${ctx.namespace} is excluded (injection.excludeNamespaces)`,
    };
  // The label wins over the annotation, as Istio's sidecar.istio.io/inject does.
  const wish = labels[ANNOTATIONS.inject] ?? annotations[ANNOTATIONS.inject];
  if (wish === 'false')
    return { inject: false, reason: 'opted-out', message: `the pod says ${ANNOTATIONS.inject}: "false"` };
  if (wish !== 'true' && config.injection.policy === 'disabled')
    return {
      inject: false,
      reason: 'not-opted-in',
      message: `injection.policy is disabled and the pod does not say ${ANNOTATIONS.inject}: "true"`,
    };
  return { inject: true };
}

/** Injects pillion into a pod template (a Pod's metadata and spec, or a workload's spec.template). */
export function injectTemplate(
  input: PodTemplate,
  config: InjectorConfig,
  ctx: InjectContext,
): InjectOutcome {
  const decision = decide(input, config, ctx);
  if (!decision.inject) return { status: 'skipped', reason: decision.reason, message: decision.message };
  // A JSON copy: the input is JSON (parsed YAML or an AdmissionReview), and this is faster than structuredClone.
  const template = JSON.parse(JSON.stringify(input)) as PodTemplate;
  const metadata = (template.metadata ??= {});
  const annotations = { ...(metadata.annotations ?? {}) };
  const { options, problems } = podOptions(annotations, config.sidecar);
  if (problems.length > 0) return { status: 'invalid', problems };

  const spec = template.spec;
  const previous = readStatus(annotations[ANNOTATIONS.status]);
  if (previous === 'unreadable')
    return {
      status: 'invalid',
      problems: [
        {
          key: ANNOTATIONS.status,
          message: 'is not what an injection by pillion wrote',
          hint: `remove the ${ANNOTATIONS.status} annotation (and what it added) to inject afresh`,
        },
      ],
    };
  const overlay = strip(spec, previous);

  const appContainers = spec.containers ?? [];
  const inboundPorts =
    options.inboundPorts ??
    appContainers.flatMap((c) =>
      (c.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => p.containerPort),
    );
  const logVolumes = options.logPaths.map((path) => ({
    path,
    volume: appContainers.flatMap((c) => c.volumeMounts ?? []).find((m) => m.mountPath === path)?.name,
  }));
  const parts = buildSidecar({
    settings: config.sidecar,
    options,
    logVolumes,
    inboundPorts: unique(inboundPorts),
  });
  const sidecar = overlay ? overlayContainer(parts.sidecar, overlay) : parts.sidecar;

  const taken = new Set((spec.volumes ?? []).map((v) => v.name));
  const clash = parts.volumes.find((v) => taken.has(v.name));
  if (clash)
    return {
      status: 'invalid',
      problems: [
        {
          key: ANNOTATIONS.inject,
          message: `the pod already has a volume named ${clash.name}, which pillion adds`,
          hint: 'rename that volume',
        },
      ],
    };
  spec.volumes = [...(spec.volumes ?? []), ...parts.volumes];

  const addedEnv: string[] = [];
  // The app writes its logs where pillion reads them: a new shared volume is mounted in every app container.
  logVolumes.forEach(({ path, volume }, i) => {
    if (volume !== undefined) return;
    for (const c of appContainers)
      (c.volumeMounts ??= []).push({ name: `${VOLUMES.logs}-${i}`, mountPath: path });
  });
  if (options.mode === 'legacy' && (ctx.kind === 'Job' || ctx.kind === 'CronJob')) {
    // A regular sidecar keeps a Job from completing: the app posts here when it is done.
    const port = ctx.adminPort ?? config.sidecar.ports.admin;
    for (const c of appContainers) {
      c.env = [
        ...(c.env ?? []).filter((e) => e.name !== QUIT_ENV),
        { name: QUIT_ENV, value: `http://127.0.0.1:${port}/quitquitquit` },
      ];
    }
    addedEnv.push(QUIT_ENV);
  }

  const userInits = spec.initContainers ?? [];
  if (options.mode === 'native') {
    spec.initContainers =
      options.position === 'first'
        ? [...parts.initContainers, sidecar, ...userInits]
        : [...parts.initContainers, ...userInits, sidecar];
  } else {
    if (parts.initContainers.length || userInits.length)
      spec.initContainers = [...parts.initContainers, ...userInits];
    spec.containers = [sidecar, ...appContainers];
    // kubectl logs and exec pick the app, not pillion, when no container is named.
    if (appContainers[0] && annotations['kubectl.kubernetes.io/default-container'] === undefined)
      annotations['kubectl.kubernetes.io/default-container'] = appContainers[0].name;
  }

  const status: InjectionStatus = {
    version: STATUS_VERSION,
    initContainers: [
      ...parts.initContainers.map((c) => c.name),
      ...(options.mode === 'native' ? [SIDECAR_NAME] : []),
    ],
    containers: options.mode === 'legacy' ? [SIDECAR_NAME] : [],
    volumes: parts.volumes.map((v) => v.name),
    env: addedEnv,
    ...(overlay ? { overlay } : {}),
  };
  annotations[ANNOTATIONS.status] = JSON.stringify(status);
  metadata.annotations = annotations;
  // Without an earlier injection the status annotation alone is a change; with one, compare.
  return {
    status: 'injected',
    template,
    changed: previous === undefined || !isDeepStrictEqualJson(input, template),
  };
}

/** The earlier injection's record, undefined when there is none. */
function readStatus(text: string | undefined): InjectionStatus | undefined | 'unreadable' {
  if (text === undefined) return undefined;
  try {
    const s = JSON.parse(text) as InjectionStatus;
    const names = (v: unknown) => Array.isArray(v) && v.every((n) => typeof n === 'string');
    if (
      s.version !== STATUS_VERSION ||
      !names(s.initContainers) ||
      !names(s.containers) ||
      !names(s.volumes) ||
      !names(s.env ?? [])
    )
      return 'unreadable';
    return s;
  } catch {
    return 'unreadable';
  }
}

/**
 * Removes what an earlier injection added (per its status) and the user's own `pillion` container,
 * and returns the overlay to apply: the user's container, else the one the status kept.
 */
function strip(spec: IPodSpec, previous: InjectionStatus | undefined): IContainer | undefined {
  const volumes = new Set(previous?.volumes ?? []);
  const env = new Set(previous?.env ?? []);
  const drop = (list: IContainer[] | undefined, names: string[]) =>
    list?.filter((c) => !names.includes(c.name));
  if (spec.initContainers) spec.initContainers = drop(spec.initContainers, previous?.initContainers ?? []);
  spec.containers = drop(spec.containers, previous?.containers ?? []) ?? [];
  let overlay = previous?.overlay;
  for (const list of [spec.initContainers, spec.containers]) {
    const i = list?.findIndex((c) => c.name === SIDECAR_NAME) ?? -1;
    if (i >= 0) overlay = list!.splice(i, 1)[0];
  }
  if (spec.initContainers?.length === 0) delete spec.initContainers;
  if (spec.volumes) {
    spec.volumes = spec.volumes.filter((v: IVolume) => !volumes.has(v.name));
    if (spec.volumes.length === 0) delete spec.volumes;
  }
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (c.volumeMounts) {
      c.volumeMounts = c.volumeMounts.filter((m) => !volumes.has(m.name));
      if (c.volumeMounts.length === 0) delete c.volumeMounts;
    }
    if (c.env && env.size) {
      c.env = c.env.filter((e) => !env.has(e.name));
      if (c.env.length === 0) delete c.env;
    }
  }
  return overlay;
}

/**
 * The user's container over the injected one: their scalars and lists win, objects merge
 * (resources, securityContext, probes), and named lists (env, ports, volumeMounts) merge by name.
 */
export function overlayContainer(base: IContainer, overlay: IContainer): IContainer {
  return mergeValue(base, overlay) as IContainer;
}

const KEYED_LISTS: Record<string, string> = {
  env: 'name',
  ports: 'containerPort',
  volumeMounts: 'mountPath',
};

function mergeValue(base: unknown, over: unknown, key?: string): unknown {
  if (Array.isArray(base) && Array.isArray(over) && key !== undefined && KEYED_LISTS[key]) {
    const id = KEYED_LISTS[key];
    const out = base.map((b: Record<string, unknown>) => {
      const o = (over as Record<string, unknown>[]).find((x) => x[id] === b[id]);
      return o ? mergeValue(b, o) : b;
    });
    for (const o of over as Record<string, unknown>[])
      if (!base.some((b: Record<string, unknown>) => b[id] === o[id])) out.push(o);
    return out;
  }
  if (isObject(base) && isObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeValue(base[k], v, k) : v;
    return out;
  }
  return over;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unique(ports: number[]): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}

function isDeepStrictEqualJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export type { PodOptions };
