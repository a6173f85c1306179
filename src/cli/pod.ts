// `pillion pod up|down|status|logs|list`: runs Kubernetes pod manifests as local processes with
// the kubelet's lifecycle. State lives in a state directory, so every command but a foreground
// `up` works from another terminal.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, Option } from 'commander';
import { formatIssue } from '../config/index.js';
import { systemClock } from '../lib/clock.js';
import { parseDuration } from '../lib/duration.js';
import { hostname } from 'node:os';
import { stringify as toYaml } from 'yaml';
import { PillionError } from '../lib/errors.js';
import {
  chooseStateDir,
  containerRestarts,
  containerStateText,
  describePod,
  findPods,
  isAlive,
  loadManifest,
  parseManifest,
  type PodManifest,
  PodDirs,
  podNotFound,
  type PodRecord,
  podSummary,
  humanDuration,
  parseCriLine,
  podProblems,
  readCriLog,
  readPodRecord,
  Supervisor,
} from '../pod/index.js';
import { ConfigWatcher, createLogger } from '../runtime/index.js';
import { renderIssues } from './print-issues.js';

interface CommonOpts {
  stateDir?: string;
}

interface UpOpts extends CommonOpts {
  detach?: boolean;
  strict: string | boolean;
  quiet?: boolean;
  backoffBase: string;
  backoffCap: string;
  backoffReset: string;
  secondMs: string;
  uid?: string;
}

const COLORS = [36, 33, 35, 32, 34, 31, 96, 93, 95, 92];

export function podCommand(done: (code: number) => void): Command {
  // A PillionError (an empty PILLION_STATE_DIR, say) is a message for a person, not a stack trace.
  const finish = (command: () => number | Promise<number>) =>
    void Promise.resolve()
      .then(command)
      .then(done, (err: unknown) => {
        if (!(err instanceof PillionError)) throw err;
        process.stderr.write(`${err.code} ${err.message}\n`);
        done(1);
      });
  // Its description is main.ts's, which lists the command without loading this file.
  const pod = new Command('pod');
  const stateOpt = () =>
    new Option(
      '--state-dir <dir>',
      'where pod state and logs live (default: $PILLION_STATE_DIR or ~/.local/state/pillion)',
    );

  pod
    .command('up')
    .argument(
      '<file>',
      'multi-document YAML: one Pod (or workload with a pod template), plus its ConfigMaps and Secrets; - reads stdin (relative commands are then relative to the current directory)',
    )
    .description(
      'start the pod; in the foreground, stream its logs and exit with its outcome (0 Succeeded, 1 Failed)',
    )
    .option('-d, --detach', 'run in the background and return once the pod has started')
    .addOption(
      new Option(
        '--strict [bool]',
        'misspelt fields are errors, as kubectl apply makes them; --strict=false makes them warnings',
      )
        .choices(['true', 'false'])
        .default('true'),
    )
    .addOption(stateOpt())
    .option('--backoff-base <duration>', 'first crash-loop back-off delay', '10s')
    .option('--backoff-cap <duration>', 'longest crash-loop back-off delay', '5m')
    .option('--backoff-reset <duration>', 'running this long resets the back-off', '10m')
    .addOption(
      new Option('--second-ms <ms>', "milliseconds in one of Kubernetes' seconds (tests)")
        .default('1000')
        .hideHelp(),
    )
    .addOption(new Option('--uid <uid>').hideHelp())
    .addOption(new Option('--quiet', 'do not mirror container output to stdout').hideHelp())
    .action((file: string, opts: UpOpts) => finish(() => up(file === '-' ? STDIN : resolve(file), opts)));

  pod
    .command('down')
    .argument('<name>', 'pod name')
    .description('stop the pod in order (preStop, main containers, sidecars last) and remove its state')
    .addOption(stateOpt())
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action((name: string, opts: CommonOpts & { namespace: string }) => finish(() => down(name, opts)));

  pod
    .command('status')
    .argument('[name]', 'pod name (without one: a table of all pods, as kubectl get pods)')
    .description(
      "as kubectl get pod: READY, STATUS, RESTARTS, AGE; with a name, also each container's state, restarts, last exit code and reason, and failing probes",
    )
    .addOption(stateOpt())
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'pods of every namespace (without a name)')
    .addOption(
      new Option('-o, --output <format>', 'wide (more columns), json or yaml').choices([
        'wide',
        'json',
        'yaml',
      ]),
    )
    .action((name: string | undefined, opts: StatusOpts) => finish(() => status(name, opts)));

  pod
    .command('describe')
    .argument('<name>', 'pod name')
    .description(
      'as kubectl describe pod: containers with state, last state, exit code and reason, restarts, probes and their last failure, mounts; conditions, volumes and events',
    )
    .addOption(stateOpt())
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action((name: string, opts: CommonOpts & { namespace: string }) => finish(() => describe(name, opts)));

  pod
    .command('top')
    .argument('[name]', 'pod name (without one: every pod of the namespace)')
    .description(
      "as kubectl top pod --containers: each container's CPU (cores, over --window) and memory (its cgroup's when it has limits, else its processes' resident memory)",
    )
    .addOption(stateOpt())
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'pods of every namespace (without a name)')
    .option('--window <duration>', 'how long CPU use is measured over', '1s')
    .addOption(new Option('-o, --output <format>', 'json').choices(['json']))
    .action((name: string | undefined, opts: TopOpts) => finish(() => top(name, opts)));

  pod
    .command('list')
    .description('every pod in the state directory, of every namespace, with its kind and file')
    .addOption(stateOpt())
    .action((opts: CommonOpts) => finish(() => list(opts)));

  pod
    .command('logs')
    .argument('<name>', 'pod name')
    .argument('[container]', 'container (default: the first main container)')
    .description("print a container's logs")
    .addOption(stateOpt())
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-f, --follow', 'keep printing as the container writes, until the pod ends')
    .option('-p, --previous', 'the previous run of the container (before its last restart)')
    .option('--timestamps', 'prefix each line with its time')
    .action((name: string, container: string | undefined, opts: LogsOpts) =>
      finish(() => logs(name, container, opts)),
    );

  return pod;
}

function stateDir(opts: CommonOpts): string {
  return chooseStateDir(opts.stateDir, process.env).dir;
}

function notFound(name: string, opts: CommonOpts & { namespace: string }): number {
  process.stderr.write(`${podNotFound(name, opts.namespace, chooseStateDir(opts.stateDir, process.env))}\n`);
  return 1;
}

function duration(flag: string, text: string): number {
  const r = parseDuration(text);
  if (!r.ok) throw new Error(`${flag}: ${r.reason}`);
  return r.value;
}

// === up =========================================================================================

/** The manifest read from stdin: it has no file to watch, and its commands are relative to the current directory. */
const STDIN = '-';

async function up(file: string, opts: UpOpts): Promise<number> {
  const fromStdin = file === STDIN;
  if (fromStdin && opts.detach) {
    process.stderr.write(
      'PILLION_ERR_CLI_BAD_OPTION --detach needs the manifest in a file (the runner reads it again in the background): save it first, e.g. pillion inject -f app.yaml > pod.yaml\n',
    );
    return 1;
  }
  if (fromStdin) file = join(process.cwd(), '(stdin)');
  const dir = stateDir(opts);
  const backoff = {
    baseMs: duration('--backoff-base', opts.backoffBase),
    capMs: duration('--backoff-cap', opts.backoffCap),
    resetAfterMs: duration('--backoff-reset', opts.backoffReset),
  };
  const manifestOpts = { uid: opts.uid, strict: opts.strict !== 'false' };
  const loaded = fromStdin
    ? parseManifest(await readStdin(), file, manifestOpts)
    : await loadManifest(file, manifestOpts);
  const color = process.stderr.isTTY === true && !process.env.NO_COLOR;
  for (const n of loaded.notes) process.stderr.write(`note: ${n}\n`);
  for (const w of loaded.warnings) process.stderr.write(`warning: ${formatIssue(w)}\n`);
  if (!loaded.ok) {
    process.stderr.write(renderIssues(loaded.errors, undefined, color));
    return 1;
  }
  const manifest = loaded.manifest;
  const existing = findPods(dir, manifest.name, manifest.namespace);
  if (existing.some((p) => p.alive && p.status.uid !== manifest.uid)) {
    process.stderr.write(
      `PILLION_ERR_POD_ALREADY_RUNNING pod/${manifest.name} is already running; stop it with: pillion pod down ${manifest.name}\n`,
    );
    return 1;
  }
  for (const old of existing) if (!old.alive && old.status.uid !== manifest.uid) old.dirs.remove(); // a finished pod of the same name is replaced

  if (opts.detach) return detach(file, manifest, dir, opts);

  const dirs = new PodDirs(dir, manifest);
  const logger = createLogger({ level: 'info', format: process.stderr.isTTY ? 'pretty' : 'json', fd: 2 });
  const names = [...manifest.spec.initContainers, ...manifest.spec.containers].map((c) => c.name);
  const width = Math.max(...names.map((n) => n.length));
  const paint = (name: string, text: string) => {
    if (!color) return text;
    return `\x1b[${COLORS[names.indexOf(name) % COLORS.length]}m${text}\x1b[0m`;
  };
  let mirror = true;
  process.stdout.on('error', () => {
    mirror = false; // the reader went away (a closed pipe): the pod runs on, its logs are in the CRI files
  });
  const supervisor = new Supervisor({
    manifest,
    dirs,
    hostEnv: process.env,
    logger: logger.child({ pod: manifest.name }),
    backoff,
    secondMs: Number(opts.secondMs),
    warnings: loaded.warnings.map(formatIssue),
    // Detached, stdout is the runner's own log: container lines are in their CRI files already.
    onLine: opts.quiet
      ? undefined
      : (container, _stream, line) => {
          if (mirror) process.stdout.write(`${paint(container, `${container.padEnd(width)} |`)} ${line}\n`);
        },
  });

  // ConfigMap and Secret edits in the file reach mounted volumes, as the kubelet syncs them.
  const watcher = new ConfigWatcher(
    file,
    () => {
      void loadManifest(file)
        .then((next) => {
          if (next.ok) supervisor.updateConfig(next.manifest);
          else for (const e of next.errors) logger.warn(`manifest change not applied: ${formatIssue(e)}`);
        })
        .catch((err: unknown) => logger.warn({ err }, 'manifest change not applied'));
    },
    { clock: systemClock },
  );
  if (!fromStdin) watcher.start(readFileSync(file, 'utf8'));

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      logger.warn({ signal }, 'already stopping; the grace period bounds it');
      return;
    }
    interrupted = true;
    logger.info({ signal }, 'stopping the pod in order');
    void supervisor.terminate(signal === 'SIGINT' ? 'Interrupted' : 'Terminated');
  };
  // A closed terminal (SIGHUP) stops the pod in order too, rather than orphaning its containers.
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, onSignal);
  // Whatever ends this process, no container may outlive it unsupervised.
  const lastResort = () => supervisor.killAllNow();
  process.on('exit', lastResort);
  try {
    const outcome = await supervisor.run();
    logger.info({ phase: outcome.phase, reason: outcome.reason }, `pod/${manifest.name} ${outcome.phase}`);
    if (interrupted) return 130;
    return outcome.phase === 'Succeeded' ? 0 : 1;
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code }, (err as Error).message);
    return 1;
  } finally {
    if (!fromStdin) watcher.stop();
    for (const sig of signals) process.off(sig, onSignal);
    process.off('exit', lastResort);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function detach(file: string, manifest: PodManifest, dir: string, opts: UpOpts): Promise<number> {
  const dirs = new PodDirs(dir, manifest);
  dirs.create();
  const out = openSync(dirs.supervisorLog, 'a');
  const args = [
    process.argv[1]!,
    'pod',
    'up',
    file,
    '--state-dir',
    dir,
    '--uid',
    manifest.uid,
    '--backoff-base',
    opts.backoffBase,
    '--backoff-cap',
    opts.backoffCap,
    '--backoff-reset',
    opts.backoffReset,
    '--second-ms',
    opts.secondMs,
    `--strict=${opts.strict === 'false' ? 'false' : 'true'}`,
    '--quiet',
  ];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  child.unref();
  // Return once the pod has been taken up (its status exists), or say why it has not.
  for (let i = 0; i < 200; i++) {
    const [rec] = findPods(dir, manifest.name, manifest.namespace).filter(
      (p) => p.status.uid === manifest.uid,
    );
    if (rec) {
      process.stdout.write(
        `pod/${manifest.name} started in the background (pid ${rec.status.supervisorPid}); see: pillion pod status ${manifest.name}\n`,
      );
      return 0;
    }
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  if (child.exitCode === null && isAlive(child.pid!)) {
    process.stdout.write(
      `pod/${manifest.name} is still being set up by pid ${child.pid}; see: pillion pod status ${manifest.name}\n`,
    );
    return 0;
  }
  process.stderr.write(`pod/${manifest.name} did not start; its runner's log: ${dirs.supervisorLog}\n`);
  return 1;
}

// === down =======================================================================================

async function down(name: string, opts: CommonOpts & { namespace: string }): Promise<number> {
  const pods = findPods(stateDir(opts), name, opts.namespace);
  if (pods.length === 0) return notFound(name, opts);
  for (const p of pods) {
    if (p.alive) {
      process.kill(p.status.supervisorPid, 'SIGTERM');
      // The runner enforces the grace period itself; allow for it, the final 2 s and some slack.
      const limit = Date.now() + p.status.gracePeriodMs * 2 + 15_000;
      while (isAlive(p.status.supervisorPid, p.status.supervisorStart) && Date.now() < limit) await sleep(50);
      if (isAlive(p.status.supervisorPid, p.status.supervisorStart))
        process.kill(p.status.supervisorPid, 'SIGKILL');
    }
    // A runner that died unexpectedly may have left containers: end them (when they are still the same processes).
    for (const c of p.status.containers) {
      if (c.pid && c.pidStart && isAlive(c.pid, c.pidStart)) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    p.dirs.remove();
  }
  process.stdout.write(`pod/${name} deleted\n`);
  return 0;
}

// === status, describe and list =================================================================

interface StatusOpts extends CommonOpts {
  namespace: string;
  allNamespaces?: boolean;
  output?: 'wide' | 'json' | 'yaml';
}

function status(name: string | undefined, opts: StatusOpts): number {
  const dir = stateDir(opts);
  const pods = name
    ? findPods(dir, name, opts.namespace).slice(0, 1)
    : findPods(dir).filter((p) => opts.allNamespaces || p.status.namespace === opts.namespace);
  if (name && pods.length === 0) return notFound(name, opts);
  if (opts.output === 'json' || opts.output === 'yaml') {
    const out = pods.map((p) => ({ ...p.status, runnerAlive: p.alive }));
    process.stdout.write(opts.output === 'json' ? `${JSON.stringify(out, null, 2)}\n` : toYaml(out));
    return 0;
  }
  if (pods.length === 0) {
    process.stdout.write(
      opts.allNamespaces || opts.namespace !== 'default'
        ? `No pods${opts.allNamespaces ? '' : ` in namespace ${opts.namespace}`}.\n`
        : 'No pods.\n',
    );
    return 0;
  }
  const now = Date.now();
  process.stdout.write(
    podTable(pods, now, { wide: opts.output === 'wide', namespace: !!opts.allNamespaces }),
  );
  if (name) process.stdout.write(containerTable(pods[0]!, now));
  return 0;
}

interface TopOpts extends CommonOpts {
  namespace: string;
  allNamespaces?: boolean;
  window: string;
  output?: 'json';
}

async function top(name: string | undefined, opts: TopOpts): Promise<number> {
  const window = parseDuration(opts.window);
  if (!window.ok) {
    process.stderr.write(`PILLION_ERR_CLI_BAD_OPTION --window ${opts.window}: ${window.reason}\n`);
    return 2;
  }
  const dir = stateDir(opts);
  const pods = (
    name
      ? findPods(dir, name, opts.namespace).slice(0, 1)
      : findPods(dir).filter((p) => opts.allNamespaces || p.status.namespace === opts.namespace)
  ).filter((p) => p.alive);
  if (name && pods.length === 0) return notFound(name, opts);
  const { alignRows, podUsage } = await import('../top/index.js');
  const usage = await Promise.all(
    pods.map(async (p) => ({
      pod: p.status,
      containers: await podUsage(
        p.status.containers.flatMap((c) =>
          c.state === 'running' && c.pid !== undefined ? [{ name: c.name, pid: c.pid }] : [],
        ),
        p.status.supervisorPid,
        window.value,
      ),
    })),
  );
  if (opts.output === 'json') {
    process.stdout.write(
      `${JSON.stringify(
        usage.map((u) => ({ namespace: u.pod.namespace, name: u.pod.name, containers: u.containers })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  if (usage.length === 0) {
    process.stdout.write('No running pods.\n');
    return 0;
  }
  const rows = [
    [...(opts.allNamespaces ? ['NAMESPACE'] : []), 'POD', 'NAME', 'CPU(cores)', 'MEMORY(bytes)'],
    ...usage.flatMap((u) =>
      u.containers.map((c) => [
        ...(opts.allNamespaces ? [u.pod.namespace] : []),
        u.pod.name,
        c.name,
        `${Math.round(c.cpuCores * 1000)}m`,
        `${Math.round(c.memoryBytes / 1048576)}Mi`,
      ]),
    ),
  ];
  process.stdout.write(`${alignRows(rows)}\n`);
  return 0;
}

function list(opts: CommonOpts): number {
  const pods = findPods(stateDir(opts));
  if (pods.length === 0) {
    process.stdout.write('No pods.\n');
    return 0;
  }
  process.stdout.write(podTable(pods, Date.now(), { wide: true, namespace: true }));
  return 0;
}

function describe(name: string, opts: CommonOpts & { namespace: string }): number {
  const [pod] = findPods(stateDir(opts), name, opts.namespace);
  if (!pod) return notFound(name, opts);
  process.stdout.write(describePod(pod, pod.dirs.readSpec(), { now: Date.now(), node: hostname() }));
  return 0;
}

// kubectl get pods: NAME READY STATUS RESTARTS AGE; -o wide adds where it runs and from what file.
function podTable(pods: PodRecord[], now: number, o: { wide: boolean; namespace: boolean }): string {
  const header = [
    ...(o.namespace ? ['NAMESPACE'] : []),
    'NAME',
    'READY',
    'STATUS',
    'RESTARTS',
    'AGE',
    ...(o.wide ? ['IP', 'NODE', 'KIND', 'FILE'] : []),
  ];
  const node = hostname();
  const rows = pods.map((p) => {
    const v = podSummary(p, now);
    return [
      ...(o.namespace ? [p.status.namespace] : []),
      p.status.name,
      v.ready,
      v.status,
      v.restarts,
      v.age,
      ...(o.wide ? ['127.0.0.1', node, p.status.kind, p.status.file] : []),
    ];
  });
  return table(header, rows);
}

// One row per container, and below it what is wrong: a back-off, failing probes (and why), warnings.
function containerTable(p: PodRecord, now: number): string {
  const rows = p.status.containers.map((c) => {
    const t = c.state === 'terminated' ? c.terminated : c.lastState;
    return [
      c.name,
      c.type,
      containerStateText(c),
      c.type === 'init' ? '-' : String(c.ready),
      containerRestarts(c, now),
      c.state === 'running' && c.startedAt ? humanAge(c.startedAt, now) : '-',
      t ? String(t.exitCode) : '-',
      t ? `${t.reason}${t.signal ? ` (${t.signal})` : ''}` : '-',
    ];
  });
  const body = table(['CONTAINER', 'TYPE', 'STATE', 'READY', 'RESTARTS', 'AGE', 'LAST EXIT', 'REASON'], rows);
  const notes = podProblems(p.status, now);
  const why = notes.length ? `\nMessages:\n${notes.map((n) => `  ${n}`).join('\n')}\n` : '';
  const warn = p.status.warnings.length
    ? `\nWarnings:\n${p.status.warnings.map((w) => `  ${w}`).join('\n')}\n`
    : '';
  return `\n${body}${why}${warn}`;
}

function humanAge(since: string, now: number): string {
  return humanDuration(now - Date.parse(since));
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join('')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

// === logs =======================================================================================

interface LogsOpts extends CommonOpts {
  namespace: string;
  follow?: boolean;
  previous?: boolean;
  timestamps?: boolean;
}

async function logs(name: string, container: string | undefined, opts: LogsOpts): Promise<number> {
  const [pod] = findPods(stateDir(opts), name, opts.namespace);
  if (!pod) return notFound(name, opts);
  const mains = pod.status.containers.filter((c) => c.type === 'main');
  const chosen = container ?? mains[0]?.name;
  const c = pod.status.containers.find((x) => x.name === chosen);
  if (!c) {
    process.stderr.write(
      `container "${chosen}" is not in pod/${name}; containers: ${pod.status.containers.map((x) => x.name).join(', ')}\n`,
    );
    return 1;
  }
  if (!container && pod.status.containers.length > 1) {
    process.stderr.write(
      `Defaulted container "${c.name}" out of: ${pod.status.containers.map((x) => x.name).join(', ')}\n`,
    );
  }
  const dir = pod.dirs.containerLogDir(c.name);
  const run = opts.previous ? c.restartCount - 1 : c.restartCount;
  if (run < 0) {
    process.stderr.write(`previous terminated container "${c.name}" in pod "${name}" not found\n`);
    return 1;
  }
  const print = (time: string, line: string) =>
    process.stdout.write(`${opts.timestamps ? `${time} ` : ''}${line}\n`);
  for (const e of readCriLog(join(dir, `${run}.log`))) print(e.time, e.line);
  if (!opts.follow || opts.previous) return 0;

  // Follow: read what the current run's file gains, by offset; move on when the container restarts.
  let current = run;
  let offset = existsSync(join(dir, `${current}.log`)) ? statSync(join(dir, `${current}.log`)).size : 0;
  let rest = '';
  let partial = '';
  for (;;) {
    await sleep(200);
    const path = join(dir, `${current}.log`);
    const size = existsSync(path) ? statSync(path).size : 0;
    if (size < offset) offset = 0; // rotated: the file started over
    if (size > offset) {
      const buf = Buffer.alloc(size - offset);
      const fd = openSync(path, 'r');
      try {
        readSync(fd, buf, 0, buf.length, offset);
      } finally {
        closeSync(fd);
      }
      offset = size;
      const lines = (rest + buf.toString('utf8')).split('\n');
      rest = lines.pop()!;
      for (const raw of lines) {
        const r = parseCriLine(raw);
        if (!r) continue;
        if (r.partial) partial += r.content;
        else {
          print(r.time, partial + r.content);
          partial = '';
        }
      }
    }
    if (existsSync(join(dir, `${current + 1}.log`))) {
      current++;
      offset = 0;
      rest = '';
      continue;
    }
    if (!readPodRecord(stateDir(opts), pod.dirs.id)?.alive) return 0; // ended, or taken down
  }
}
