// Where a pod lives on disk, so `status`, `logs` and `down` work from another terminal while
// `up --detach` runs in the background:
//   <state>/run/<ns>_<name>_<uid>/status.json      the pod's status, rewritten atomically on change
//   <state>/run/<ns>_<name>_<uid>/volumes/<vol>/   emptyDir, configMap, secret, downwardAPI volumes
//   <state>/run/<ns>_<name>_<uid>/supervisor.log   the runner's own log when detached
//   <state>/pods/<ns>_<name>_<uid>/<container>/<restart>.log   container logs, kubelet CRI format

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../lib/atomic-write.js';
import { didYouMean } from '../lib/did-you-mean.js';
import type { StateDirChoice } from '../lib/state-dir.js';
import type { PodSpec } from './config.js';

export type Phase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';
export type ContainerType = 'init' | 'sidecar' | 'main';

export interface TerminatedState {
  exitCode: number;
  signal?: string | undefined;
  reason: string;
  message?: string | undefined;
  startedAt?: string | undefined;
  finishedAt: string;
}

/** The last outcome of one kind of probe, and why it last failed (kubectl describe shows it). */
export interface ProbeStatus {
  /** Whether the last probe passed; undefined before the first one. */
  ok?: boolean | undefined;
  consecutiveFailures: number;
  lastFailure?: { message: string; at: string } | undefined;
}

export type ProbeKind = 'startup' | 'liveness' | 'readiness';

/** A pod event as `kubectl describe` lists it; repeats of the same event are counted, not copied. */
export interface PodEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  /** The container it is about, when it is about one. */
  container?: string | undefined;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
}

export interface ContainerStatus {
  name: string;
  type: ContainerType;
  state: 'waiting' | 'running' | 'terminated';
  reason?: string | undefined;
  message?: string | undefined;
  pid?: number | undefined;
  /** The process's start time from /proc, so a reused pid is never taken for this one. */
  pidStart?: string | undefined;
  startedAt?: string | undefined;
  terminated?: TerminatedState | undefined;
  lastState?: TerminatedState | undefined;
  ready: boolean;
  started: boolean;
  restartCount: number;
  probes?: Partial<Record<ProbeKind, ProbeStatus>> | undefined;
}

export interface PodStatus {
  name: string;
  namespace: string;
  uid: string;
  kind: string;
  file: string;
  phase: Phase;
  reason?: string | undefined;
  message?: string | undefined;
  terminating: boolean;
  supervisorPid: number;
  /** The runner's start time from /proc (see pidStart). */
  supervisorStart?: string | undefined;
  /** The pod's grace period in milliseconds, so `down` knows how long to wait. */
  gracePeriodMs: number;
  startTime: string;
  endTime?: string | undefined;
  conditions: { initialized: boolean; containersReady: boolean; ready: boolean };
  containers: ContainerStatus[];
  warnings: string[];
  /** Newest last; bounded (see events.ts). */
  events?: PodEvent[] | undefined;
}

export { chooseStateDir, defaultStateDir, type StateDirChoice } from '../lib/state-dir.js';

/** What `describe` needs of the manifest: never the ConfigMap and Secret data. */
export interface PodSpecRecord {
  kind: string;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: PodSpec;
}

export class PodDirs {
  readonly id: string;
  readonly runDir: string;
  readonly logsDir: string;

  constructor(stateDir: string, pod: { namespace: string; name: string; uid: string }) {
    this.id = `${pod.namespace}_${pod.name}_${pod.uid}`;
    this.runDir = join(stateDir, 'run', this.id);
    this.logsDir = join(stateDir, 'pods', this.id);
  }

  create(): void {
    mkdirSync(join(this.runDir, 'volumes'), { recursive: true, mode: 0o700 });
    mkdirSync(this.logsDir, { recursive: true });
  }

  get volumesDir(): string {
    return join(this.runDir, 'volumes');
  }

  get statusFile(): string {
    return join(this.runDir, 'status.json');
  }

  get supervisorLog(): string {
    return join(this.runDir, 'supervisor.log');
  }

  /** The pod as it was started (its spec is immutable), for `pillion pod describe`. */
  get specFile(): string {
    return join(this.runDir, 'spec.json');
  }

  writeSpec(pod: PodSpecRecord): void {
    const { kind, name, namespace, labels, annotations, spec } = pod;
    writeFileAtomicSync(
      this.specFile,
      `${JSON.stringify({ kind, name, namespace, labels, annotations, spec }, null, 2)}\n`,
    );
  }

  /** The spec written at start, or undefined (a pod started by an older pillion has none). */
  readSpec(): PodSpecRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.specFile, 'utf8')) as PodSpecRecord;
    } catch {
      return undefined;
    }
  }

  containerLogDir(container: string): string {
    return join(this.logsDir, container);
  }

  writeStatus(status: PodStatus): void {
    writeFileAtomicSync(this.statusFile, `${JSON.stringify(status, null, 2)}\n`);
  }

  remove(): void {
    rmSync(this.runDir, { recursive: true, force: true });
    rmSync(this.logsDir, { recursive: true, force: true });
  }
}

export interface PodRecord {
  dirs: PodDirs;
  status: PodStatus;
  /** Whether the process that runs the pod is alive. */
  alive: boolean;
}

/** Every pod in the state directory, newest first; with a name, only pods of that name. */
export function findPods(stateDir: string, name?: string, namespace = 'default'): PodRecord[] {
  const runRoot = join(stateDir, 'run');
  if (!existsSync(runRoot)) return [];
  const out: PodRecord[] = [];
  for (const entry of readdirSync(runRoot)) {
    const rec = readPodRecord(stateDir, entry);
    if (!rec) continue; // a pod still being set up, or a half-removed one
    if (name !== undefined && (rec.status.name !== name || rec.status.namespace !== namespace)) continue;
    out.push(rec);
  }
  return out.sort((a, b) => b.status.startTime.localeCompare(a.status.startTime));
}

/** One pod's record, read from its run directory (`ns_name_uid`); undefined when it has none. */
export function readPodRecord(stateDir: string, id: string): PodRecord | undefined {
  let status: PodStatus;
  try {
    status = JSON.parse(readFileSync(join(stateDir, 'run', id, 'status.json'), 'utf8')) as PodStatus;
  } catch {
    return undefined;
  }
  // A finished pod is never alive, whoever holds its old pid now.
  const alive = status.endTime === undefined && isAlive(status.supervisorPid, status.supervisorStart);
  return { dirs: new PodDirs(stateDir, status), status, alive };
}

/**
 * The pid of a running container of the pod whose run directory is runDir (a container finds it
 * in its PILLION_POD_DIR), read from the status at this moment: it changes when the container
 * restarts. Says why when there is none (no such container, not running).
 */
export function runningContainerPid(runDir: string, container: string): number | { problem: string } {
  let status: PodStatus;
  try {
    status = JSON.parse(readFileSync(join(runDir, 'status.json'), 'utf8')) as PodStatus;
  } catch (err) {
    return {
      problem: `cannot read the pod's status in ${runDir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    };
  }
  const c = status.containers.find((x) => x.name === container);
  if (!c) {
    const names = status.containers.map((x) => x.name);
    const near = didYouMean(container, names);
    return {
      problem: `pod ${status.name} has no container "${container}" (${near ? `did you mean "${near}"? ` : ''}containers: ${names.join(', ')})`,
    };
  }
  // A recorded start time that no longer matches means the pid is gone or taken by another process.
  if (
    c.state !== 'running' ||
    c.pid === undefined ||
    (c.pidStart !== undefined && procStartTime(c.pid) !== c.pidStart)
  )
    return {
      problem: `container "${container}" of pod ${status.name} is not running (${c.state}${c.reason ? `: ${c.reason}` : ''})`,
    };
  return c.pid;
}

/** Whether pid is alive and, when its recorded start time is given, still the same process. */
export function isAlive(pid: number, start?: string): boolean {
  if (start !== undefined) return procStartTime(pid) === start;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot); undefined when gone. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * PILLION_ERR_POD_NOT_FOUND's message: the state directory it looked in and where that came from,
 * the pods that are there, and how to look somewhere else. The demo and `sudo` run pods in another
 * user's default state directory, and "no such pod" alone sends people looking for a typo.
 */
export function podNotFound(name: string, namespace: string, where: StateDirChoice): string {
  const from =
    where.source === 'flag'
      ? 'given with --state-dir'
      : where.source === 'env'
        ? 'from $PILLION_STATE_DIR'
        : 'the default state directory';
  const pods = findPods(where.dir);
  const names = [
    ...new Set(
      pods.map((p) => (p.status.namespace === 'default' ? '' : `${p.status.namespace}/`) + p.status.name),
    ),
  ];
  const guess = didYouMean(name, names);
  const there = guess
    ? `did you mean "${guess}"? `
    : names.length
      ? `pods there: ${names.join(', ')}; `
      : 'it has no pods; ';
  const ns = namespace === 'default' ? '' : ` in namespace "${namespace}"`;
  return `PILLION_ERR_POD_NOT_FOUND no pod "${name}"${ns} in ${where.dir} (${from}): ${there}a pod started by another user or with another state directory is found with --state-dir DIR or PILLION_STATE_DIR=DIR`;
}
