// `pillion pod describe`: what `kubectl describe pod` shows, for a pod of processes. Its spec (as
// started), each container's state, last state, exit code and reason, restarts, probes with the
// reason of their last failure, mounts and environment (never a secret's value), the pod's
// conditions and volumes, and its events — the first thing a kubectl user reads when something is
// wrong. Scheduled and Pulled events mean nothing here and are never recorded.

import { isSecretKey } from '../config/index.js';
import type { ContainerSpec, ProbeSpec, VolumeSpec } from './config.js';
import { containerRestarts, humanDuration } from './pod-view.js';
import type { ContainerStatus, PodEvent, PodRecord, PodSpecRecord, TerminatedState } from './state.js';

export interface DescribeContext {
  now: number;
  /** This host's name: the pod's node. */
  node: string;
}

export function describePod(p: PodRecord, spec: PodSpecRecord | undefined, ctx: DescribeContext): string {
  const s = p.status;
  const w = new Writer();
  w.kv(0, [
    ['Name', s.name],
    ['Namespace', s.namespace],
    ['Kind', s.kind],
    ['File', s.file],
    ['Node', `${ctx.node}/127.0.0.1`],
    ['Start Time', stamp(s.startTime)],
    ['Labels', mapLines(spec?.labels)],
    ['Annotations', mapLines(spec?.annotations)],
    ['Status', s.terminating ? `Terminating (${s.phase})` : s.phase],
    ...(s.reason && s.phase !== 'Running' && s.phase !== 'Pending' ? [['Reason', s.reason] as Row] : []),
    ['IP', '127.0.0.1'],
    ['Runner', `pid ${s.supervisorPid} (${p.alive ? 'running' : s.endTime ? 'done' : 'not running'})`],
    ...(s.endTime ? [['End Time', stamp(s.endTime)] as Row] : []),
  ]);
  const specs = new Map(
    [...(spec?.spec.initContainers ?? []), ...(spec?.spec.containers ?? [])].map((c) => [c.name, c]),
  );
  const inits = s.containers.filter((c) => c.type !== 'main');
  const mains = s.containers.filter((c) => c.type === 'main');
  if (inits.length) {
    w.line(0, 'Init Containers:');
    for (const c of inits) container(w, c, specs.get(c.name), ctx.now);
  }
  w.line(0, 'Containers:');
  for (const c of mains) container(w, c, specs.get(c.name), ctx.now);

  w.line(0, 'Conditions:');
  w.table(1, [
    ['Type', 'Status'],
    ['Initialized', bool(s.conditions.initialized)],
    ['Ready', bool(s.conditions.ready)],
    ['ContainersReady', bool(s.conditions.containersReady)],
  ]);
  const volumes = spec?.spec.volumes ?? [];
  if (volumes.length === 0) w.kv(0, [['Volumes', '<none>']]);
  else {
    w.line(0, 'Volumes:');
    for (const v of volumes) {
      w.line(1, `${v.name}:`);
      w.kv(2, volumeRows(v));
    }
  }
  if (s.warnings.length) {
    w.line(0, 'Warnings:');
    for (const x of s.warnings) w.line(1, x);
  }
  events(w, s.events ?? [], ctx.now);
  return `${w.text()}\n`;
}

type Row = [string, string];

function container(w: Writer, c: ContainerStatus, spec: ContainerSpec | undefined, now: number): void {
  w.line(1, `${c.name}:`);
  const rows: Row[] = [['Type', c.type === 'sidecar' ? 'sidecar (restartPolicy: Always)' : c.type]];
  if (spec?.image) rows.push(['Image', `${spec.image} (not pulled: the command runs on this host)`]);
  if (spec?.ports.length) {
    rows.push([
      'Ports',
      spec.ports.map((x) => `${x.containerPort}/${x.protocol}${x.name ? ` (${x.name})` : ''}`).join(', '),
    ]);
  }
  if (c.pid) rows.push(['PID', String(c.pid)]);
  w.kv(2, rows);
  if (spec?.command?.length) {
    w.line(2, 'Command:');
    for (const x of spec.command) w.line(3, x);
  }
  if (spec?.args.length) {
    w.line(2, 'Args:');
    for (const x of spec.args) w.line(3, x);
  }
  state(w, 'State', c);
  if (c.lastState) terminated(w, 'Last State', c.lastState);
  const probeRows: Row[] = [];
  for (const [kind, title] of [
    ['liveness', 'Liveness'],
    ['readiness', 'Readiness'],
    ['startup', 'Startup'],
  ] as const) {
    const probe = spec?.[`${kind}Probe`];
    if (probe) probeRows.push([title, probeText(probe)]);
  }
  // The kubelet reports an init container that exited 0 as ready.
  const ready = c.ready || (c.type === 'init' && c.state === 'terminated' && c.terminated?.exitCode === 0);
  w.kv(2, [
    ['Ready', bool(ready)],
    ['Started', bool(c.started)],
    ['Restart Count', containerRestarts(c, now)],
    ...resourceRows(spec),
  ]);
  for (const [title, text] of probeRows) {
    w.kv(2, [[title, text]]);
    const kind = title.toLowerCase() as 'liveness' | 'readiness' | 'startup';
    const st = c.probes?.[kind];
    if (st?.lastFailure) {
      const streak = st.ok === false ? `, failing ${st.consecutiveFailures} in a row` : ', passing since';
      w.kv(3, [['Last failure', `${st.lastFailure.message} (${ago(st.lastFailure.at, now)}${streak})`]]);
    }
  }
  if (spec?.lifecycle?.postStart || spec?.lifecycle?.preStop) {
    w.kv(2, [
      ...(spec.lifecycle.postStart ? [['PostStart', handlerText(spec.lifecycle.postStart)] as Row] : []),
      ...(spec.lifecycle.preStop ? [['PreStop', handlerText(spec.lifecycle.preStop)] as Row] : []),
    ]);
  }
  const env = spec ? envRows(spec) : [];
  if (env.length) {
    w.line(2, 'Environment:');
    w.kv(3, env);
  } else w.kv(2, [['Environment', '<none>']]);
  if (spec?.volumeMounts.length) {
    w.line(2, 'Mounts:');
    for (const m of spec.volumeMounts) {
      const sub = m.subPath ? ` (path "${m.subPath}")` : '';
      w.line(3, `${m.mountPath} from ${m.name}${sub} (${m.readOnly ? 'ro' : 'rw'})`);
    }
  } else w.kv(2, [['Mounts', '<none>']]);
}

function state(w: Writer, title: string, c: ContainerStatus): void {
  if (c.state === 'running') {
    w.kv(2, [[title, 'Running']]);
    w.kv(3, [['Started', stamp(c.startedAt)]]);
  } else if (c.state === 'terminated' && c.terminated) terminated(w, title, c.terminated);
  else {
    w.kv(2, [[title, 'Waiting']]);
    const rows: Row[] = [['Reason', c.reason ?? '']];
    if (c.message) rows.push(['Message', c.message]);
    w.kv(3, rows);
  }
}

function terminated(w: Writer, title: string, t: TerminatedState): void {
  w.kv(2, [[title, 'Terminated']]);
  const rows: Row[] = [['Reason', t.reason]];
  if (t.message) rows.push(['Message', t.message]);
  rows.push(['Exit Code', String(t.exitCode)]);
  if (t.signal) rows.push(['Signal', t.signal]);
  if (t.startedAt) rows.push(['Started', stamp(t.startedAt)]);
  rows.push(['Finished', stamp(t.finishedAt)]);
  w.kv(3, rows);
}

function resourceRows(spec: ContainerSpec | undefined): Row[] {
  const out: Row[] = [];
  for (const kind of ['limits', 'requests'] as const) {
    const r = spec?.resources?.[kind];
    const parts = Object.entries(r ?? {}).filter(([, v]) => v !== undefined);
    if (parts.length)
      out.push([kind === 'limits' ? 'Limits' : 'Requests', parts.map(([k, v]) => `${k}: ${v}`).join(', ')]);
  }
  return out;
}

// kubectl's probe line: http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3
function probeText(p: ProbeSpec): string {
  const action = p.exec
    ? `exec [${p.exec.command.join(' ')}]`
    : p.httpGet
      ? `http-get ${p.httpGet.scheme.toLowerCase()}://${p.httpGet.host ?? ''}:${p.httpGet.port}${p.httpGet.path}`
      : p.tcpSocket
        ? `tcp-socket ${p.tcpSocket.host ?? ''}:${p.tcpSocket.port}`
        : 'unknown';
  return `${action} delay=${p.initialDelaySeconds}s timeout=${p.timeoutSeconds}s period=${p.periodSeconds}s #success=${p.successThreshold} #failure=${p.failureThreshold}`;
}

function handlerText(h: NonNullable<NonNullable<ContainerSpec['lifecycle']>['preStop']>): string {
  if (h.exec) return `exec [${h.exec.command.join(' ')}]`;
  if (h.httpGet)
    return `http-get ${h.httpGet.scheme.toLowerCase()}://${h.httpGet.host ?? ''}:${h.httpGet.port}${h.httpGet.path}`;
  return `sleep ${h.sleep?.seconds ?? 0}s`;
}

// As kubectl prints them; a literal value whose name says it is secret is not shown.
function envRows(c: ContainerSpec): Row[] {
  const rows: Row[] = [];
  for (const from of c.envFrom) {
    const ref = from.configMapRef ?? from.secretRef;
    const what = from.configMapRef ? 'ConfigMap' : 'Secret';
    if (ref)
      rows.push([
        `${ref.name}`,
        `${what}${from.prefix ? ` with prefix '${from.prefix}'` : ''}  Optional: ${ref.optional}`,
      ]);
  }
  for (const e of c.env) {
    const v = e.valueFrom;
    let text: string;
    if (v?.configMapKeyRef)
      text = `<set to the key '${v.configMapKeyRef.key}' of config map '${v.configMapKeyRef.name}'>`;
    else if (v?.secretKeyRef)
      text = `<set to the key '${v.secretKeyRef.key}' in secret '${v.secretKeyRef.name}'>`;
    else if (v?.fieldRef) text = `(v1:${v.fieldRef.fieldPath})`;
    else if (v?.resourceFieldRef) {
      const r = v.resourceFieldRef;
      text = `${r.resource} (${r.containerName ?? c.name})${r.divisor !== undefined ? ` divisor ${r.divisor}` : ''}`;
    } else text = isSecretKey(e.name) ? '<redacted>' : (e.value ?? '');
    rows.push([e.name, text]);
  }
  return rows;
}

function volumeRows(v: VolumeSpec): Row[] {
  if (v.emptyDir)
    return [
      ['Type', "EmptyDir (a temporary directory that shares a pod's lifetime)"],
      ['Medium', v.emptyDir.medium],
      ['SizeLimit', v.emptyDir.sizeLimit !== undefined ? String(v.emptyDir.sizeLimit) : '<unset>'],
    ];
  if (v.hostPath)
    return [
      ['Type', 'HostPath (bare host directory volume)'],
      ['Path', v.hostPath.path],
      ['HostPathType', v.hostPath.type],
    ];
  if (v.configMap)
    return [
      ['Type', 'ConfigMap (a volume populated by a ConfigMap)'],
      ['Name', v.configMap.name],
      ['Optional', String(v.configMap.optional)],
    ];
  if (v.secret)
    return [
      ['Type', 'Secret (a volume populated by a Secret)'],
      ['SecretName', v.secret.secretName],
      ['Optional', String(v.secret.optional)],
    ];
  return [
    ['Type', 'DownwardAPI (a volume populated by information about the pod)'],
    [
      'Items',
      (v.downwardAPI?.items ?? [])
        .map((i) => `${i.fieldRef?.fieldPath ?? i.resourceFieldRef?.resource} -> ${i.path}`)
        .join(', '),
    ],
  ];
}

// kubectl's event table; a repeated event reads "12s (x5 over 2m)".
function events(w: Writer, list: PodEvent[], now: number): void {
  if (list.length === 0) {
    w.kv(0, [['Events', '<none>']]);
    return;
  }
  w.line(0, 'Events:');
  w.table(1, [
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    ['----', '------', '----', '----', '-------'],
    ...list.map((e) => [
      e.type,
      e.reason,
      e.count > 1
        ? `${ago(e.lastTimestamp, now, '')} (x${e.count} over ${ago(e.firstTimestamp, now, '')})`
        : ago(e.lastTimestamp, now, ''),
      e.container ? `pillion (${e.container})` : 'pillion',
      e.message,
    ]),
  ]);
}

function ago(iso: string, now: number, suffix = ' ago'): string {
  return `${humanDuration(now - Date.parse(iso))}${suffix}`;
}

function stamp(iso: string | undefined): string {
  return iso ? new Date(iso).toUTCString().replace('GMT', '+0000') : '<unknown>';
}

function bool(b: boolean): string {
  return b ? 'True' : 'False';
}

function mapLines(m: Record<string, string> | undefined): string {
  const entries = Object.entries(m ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join('\n') : '<none>';
}

/**
 * kubectl describe's layout (a tabwriter): two spaces per level, and the values of consecutive
 * `key: value` lines aligned in one column, whatever their level.
 */
class Writer {
  #lines: (string | [string, string])[] = [];

  line(level: number, text: string): void {
    this.#lines.push(`${'  '.repeat(level)}${text}`);
  }

  kv(level: number, rows: Row[]): void {
    for (const [k, v] of rows) {
      const [first, ...rest] = v.split('\n');
      this.#lines.push([`${'  '.repeat(level)}${k}:`, first ?? '']);
      for (const more of rest) this.#lines.push(['', more]);
    }
  }

  table(level: number, rows: string[][]): void {
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    for (const r of rows) {
      this.line(
        level,
        r
          .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 2)))
          .join('')
          .trimEnd(),
      );
    }
  }

  text(): string {
    const out: string[] = [];
    for (let i = 0; i < this.#lines.length;) {
      const l = this.#lines[i]!;
      if (typeof l === 'string') {
        out.push(l);
        i++;
        continue;
      }
      let j = i;
      while (j < this.#lines.length && typeof this.#lines[j] !== 'string') j++;
      const block = this.#lines.slice(i, j) as [string, string][];
      const width = Math.max(...block.map(([k]) => k.length)) + 2;
      for (const [k, v] of block) out.push(`${k.padEnd(width)}${v}`.trimEnd());
      i = j;
    }
    return out.join('\n');
  }
}
