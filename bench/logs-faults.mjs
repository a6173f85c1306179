// The fault cases of bench/logs.mjs (issue 13): numbered lines through rename rotation of a
// live-name-only file with repeated kill -9 restarts, for pillion and syslog-ng on the same
// schedule (lines lost, lines duplicated), and pillion's resident memory through a sink outage and
// its catch-up, with the memory buffer (one sink, and two sinks with one down) and the disk buffer.
// Run from bench/logs.mjs; everything it starts dies with it (bench/lib.mjs).

import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  FileLineCounter,
  PeerStartError,
  checkSeqs,
  fmtInt,
  freePort,
  get,
  isRunning,
  killGroup,
  sleep,
  startProcess,
  startRssSampler,
  statusMb,
  stopProcess,
  table,
  tail,
  waitFor200,
} from './lib.mjs';
import { startSyslogNg } from './syslog-ng.mjs';

const READY_DEADLINE_MS = 30_000;
/** Once no new line arrived for this long after the writer finished, the output is final. */
const QUIET_MS = 5000;
/** Pillion's default batch (maxEvents): the bound on what one restart may send twice. */
const PILLION_BATCH = 10_000;

/**
 * The app: `lines` numbered JSON lines (seq 1..N) at `perSecond`, a burst every 10 ms, and every
 * `renameMs` its file renamed to `app.log.<n>`; the next burst makes a new one at the path, as
 * logrotate's default and the kubelet do. Prints one line per rename and "done" at the end.
 */
const WRITER = `
  const fs = require('node:fs');
  const [file, lines, perSecond, renameMs] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
  const started = Date.now();
  let written = 0;
  let renames = 0;
  let lastRename = started;
  const tick = () => {
    const due = Math.min(lines, Math.floor(((Date.now() - started) * perSecond) / 1000));
    let s = '';
    for (; written < due; ) {
      written++;
      s += '{"time":"' + new Date().toISOString() + '","level":"info","msg":"GET /orders/' + (written % 1000) + ' 200","seq":' + written + '}\\n';
    }
    if (s) fs.appendFileSync(file, s);
    if (Date.now() - lastRename >= renameMs && written < lines) {
      fs.renameSync(file, file + '.' + ++renames);
      lastRename = Date.now();
    }
    if (written >= lines) {
      console.log('done ' + renames);
      process.exit(0);
    }
    setTimeout(tick, 10);
  };
  tick();
`;

// ---------------------------------------------------------------------------------------------
// Rotation with kill -9 restarts.

/** A contender that can be killed and started again on the same state: syslog-ng or pillion. */
async function rotationContender(name, dir, opts) {
  const inDir = path.join(dir, 'in');
  fs.mkdirSync(inDir, { recursive: true });
  const live = path.join(inDir, 'app.log');
  const outFile = path.join(dir, 'out.ndjson');
  if (name === 'syslog-ng') {
    const conf = path.join(dir, 'syslog-ng.conf');
    const ctl = path.join(dir, 'syslog-ng.ctl');
    const pidFile = path.join(dir, 'syslog-ng.pid');
    const persist = path.join(dir, 'syslog-ng.persist');
    // file() on the live name, as users write it, polled every 100 ms (its default, a second, loses
    // every file that lives less than that); the lines go out as they came, with flow control.
    fs.writeFileSync(
      conf,
      `@version: 3.38
options { threaded(yes); use-dns(no); dns-cache(no); stats-freq(0); create-dirs(no); };
source s_in { file(${JSON.stringify(live)} flags(no-parse) follow-freq(0.1)); };
destination d_out { file(${JSON.stringify(outFile)} template("$MSG\\n")); };
log { source(s_in); destination(d_out); flags(flow-control); };
`,
    );
    return {
      outFile,
      live,
      start: () => startSyslogNg({ conf, persist, pidFile, ctl, deadlineMs: READY_DEADLINE_MS, pollMs: 10 }),
      batch: null,
    };
  }
  const adminPort = await freePort();
  const conf = path.join(dir, 'pillion.yaml');
  // The live name only, as the kubelet's and most users' configs have it; the defaults otherwise.
  fs.writeFileSync(
    conf,
    `runtime:
  log: { level: warn }
admin:
  listen: 127.0.0.1:${adminPort}
logs:
  dataDir: ${JSON.stringify(path.join(dir, 'data'))}
  sources:
    app: { type: tail, include: [${JSON.stringify(live)}], parser: json }
  sinks:
    out: { type: file, path: ${JSON.stringify(outFile)}, maxBytes: 10GiB }
`,
  );
  return {
    outFile,
    live,
    start: async () => {
      const child = startProcess('pillion', opts.pillion, ['run', '-c', conf]);
      await waitFor200(`http://127.0.0.1:${adminPort}/readyz`, child, READY_DEADLINE_MS);
      return child;
    },
    batch: PILLION_BATCH,
  };
}

async function runRotation(name, root, opts) {
  const dir = path.join(root, `rotation-${name}`);
  const c = await rotationContender(name, dir, opts);
  let child = null;
  let writer = null;
  const counter = new FileLineCounter(c.outFile);
  try {
    child = await c.start();
    const t0 = performance.now();
    writer = startProcess('writer', process.execPath, [
      '-e',
      WRITER,
      c.live,
      String(opts.rotationLines),
      String(opts.rotationRate),
      String(opts.renameMs),
    ]);
    // kill -9 once it has run for killAfterMs since it was ready, then start it again at once.
    const downtimes = [];
    for (let k = 0; k < opts.kills; k++) {
      await sleep(opts.killAfterMs);
      killGroup(child, 'SIGKILL');
      await child.exited;
      const killedAt = performance.now();
      child = await c.start();
      downtimes.push(performance.now() - killedAt);
    }
    const { code } = await writer.exited;
    if (code !== 0) throw new Error(`the writer failed: ${tail(writer.stderrText)}`);
    const renames = Number(/done (\d+)/.exec(writer.stdoutText)?.[1] ?? 0);
    // Until every line arrived, or nothing more for QUIET_MS.
    let last = -1;
    let lastChange = performance.now();
    let doneAt = null;
    for (;;) {
      const n = counter.poll();
      if (n !== last) {
        last = n;
        lastChange = performance.now();
      }
      if (doneAt === null && n >= opts.rotationLines) doneAt = performance.now();
      if (performance.now() - lastChange > QUIET_MS) break;
      if (!isRunning(child)) throw new Error(`${name} exited: ${tail(child.stderrText)}`);
      await sleep(100);
    }
    counter.close();
    const seqs = checkSeqs(c.outFile, opts.rotationLines);
    return {
      name,
      restarts: opts.kills,
      renames,
      lost: seqs.missing,
      duplicated: seqs.duplicates,
      batch: c.batch,
      seconds: ((doneAt ?? lastChange) - t0) / 1000,
      downtimeMs: downtimes,
      complete: seqs.missing === 0,
    };
  } catch (err) {
    if (!(err instanceof PeerStartError)) throw err;
    return { name, failed: err.message };
  } finally {
    counter.close();
    if (writer) await stopProcess(writer);
    if (child) await stopProcess(child);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Memory through an outage and its catch-up.

// One sink: the tail paces to it (its file keeps the lines) and the buffer never fills. Two sinks
// with one down: the failing sink's buffer fills to its bound so the other keeps going — at the
// default bound, and at the smaller one docs/logs.md suggests for a 150 MB budget.
export const OUTAGE_VARIANT_NAMES = ['memory', 'memory-2', 'memory-2-16', 'disk'];
const OUTAGE_VARIANTS = {
  memory: { label: 'memory buffer (64 MiB), one sink', buffer: '', twoSinks: false },
  'memory-2': { label: 'memory buffer (64 MiB), two sinks, one down', buffer: '', twoSinks: true },
  'memory-2-16': {
    label: 'memory buffer (16 MiB), two sinks, one down',
    buffer: ', buffer: { maxBytes: 16MiB }',
    twoSinks: true,
  },
  disk: {
    label: 'disk buffer (1 GiB), one sink',
    buffer: ', buffer: { type: disk, maxBytes: 1GiB }',
    twoSinks: false,
  },
};

async function runOutage(variant, root, ctx) {
  const { opts, inputFile, logsScript } = ctx;
  const v = OUTAGE_VARIANTS[variant];
  const dir = path.join(root, `outage-${variant}`);
  const inDir = path.join(dir, 'in');
  fs.mkdirSync(inDir, { recursive: true });
  const received = path.join(dir, 'received.ndjson');
  const fileOut = path.join(dir, 'out.ndjson');
  const port = await freePort();
  const receiver = startProcess('receiver', process.execPath, [
    logsScript,
    '--serve',
    'receiver',
    '--listen',
    String(port),
    '--out',
    received,
    '--down',
  ]);
  let child = null;
  let rss = null;
  try {
    await waitFor200(`http://127.0.0.1:${port}/count`, receiver, READY_DEADLINE_MS);
    const adminPort = await freePort();
    const conf = path.join(dir, 'pillion.yaml');
    const http = `{ type: http, url: "http://127.0.0.1:${port}/ingest", compression: none, batch: { maxAge: 100ms }, retry: { initialBackoff: 100ms, maxBackoff: 1s }${v.buffer} }`;
    fs.writeFileSync(
      conf,
      `runtime:
  log: { level: warn }
admin:
  listen: 127.0.0.1:${adminPort}
logs:
  dataDir: ${JSON.stringify(path.join(dir, 'data'))}
  sources:
    app: { type: tail, include: [${JSON.stringify(`${inDir}/*.log`)}], parser: json }
  transforms:
    - { type: enrich, fields: { env: bench }, hostname: host }
  sinks:
    up: ${http}
${v.twoSinks ? `    archive: { type: file, path: ${JSON.stringify(fileOut)}, maxBytes: 10GiB }\n` : ''}`,
    );
    child = startProcess('pillion', opts.pillion, ['run', '-c', conf]);
    await waitFor200(`http://127.0.0.1:${adminPort}/readyz`, child, READY_DEADLINE_MS);
    rss = startRssSampler(child.pid, 20);
    const staged = path.join(dir, 'staged.log');
    fs.linkSync(inputFile, staged);
    fs.renameSync(staged, path.join(inDir, 'app.log'));
    // The outage: the receiver answers 503 while pillion reads what it can.
    await sleep(opts.outageSeconds * 1000);
    const outagePeak = rss.peak();
    rss.resetPeak();
    const t0 = performance.now();
    await get(`http://127.0.0.1:${port}/up`, 2000);
    const fileCounter = v.twoSinks ? new FileLineCounter(fileOut) : null;
    for (;;) {
      const n = Number((await get(`http://127.0.0.1:${port}/count`, 2000)).body.toString());
      const f = fileCounter ? fileCounter.poll() : opts.lines;
      if (n >= opts.lines && f >= opts.lines) break;
      if (!isRunning(child)) throw new Error(`pillion exited: ${tail(child.stderrText)}`);
      if (performance.now() - t0 > opts.timeout * 1000)
        throw new Error(`only ${fmtInt(n)} lines after ${opts.timeout} s`);
      await sleep(50);
    }
    const catchUp = (performance.now() - t0) / 1000;
    fileCounter?.close();
    const catchUpPeak = rss.stop();
    const hwm = statusMb(child.pid, 'VmHWM') ?? 0;
    await sleep(1000); // duplicates would arrive now
    const seqs = checkSeqs(received, opts.lines);
    const fileSeqs = v.twoSinks ? checkSeqs(fileOut, opts.lines) : null;
    return {
      variant,
      label: v.label,
      outagePeakMb: outagePeak,
      catchUpPeakMb: catchUpPeak,
      hwmMb: hwm,
      catchUpSeconds: catchUp,
      exact:
        seqs.distinct === opts.lines &&
        seqs.duplicates === 0 &&
        (!fileSeqs || (fileSeqs.distinct === opts.lines && fileSeqs.duplicates === 0)),
      seqs,
    };
  } catch (err) {
    if (!(err instanceof PeerStartError)) throw err;
    return { variant, label: v.label, failed: err.message };
  } finally {
    rss?.stop();
    if (child) await stopProcess(child);
    await stopProcess(receiver);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The cases and their report.

export async function runFaultCases({ opts, root, inputFile, logsScript, progress }) {
  const rotation = [];
  const outage = [];
  if (opts.cases.includes('rotation')) {
    for (const name of ['syslog-ng', 'pillion']) {
      progress(`rotation with ${opts.kills} kill -9 restarts: ${name}`);
      const r = await runRotation(name, root, opts);
      if (!r.failed)
        progress(
          `  lost ${fmtInt(r.lost)}, duplicated ${fmtInt(r.duplicated)}, ${r.renames} renames, restarts ${r.downtimeMs.map((ms) => `${Math.round(ms)} ms`).join(', ')}`,
        );
      rotation.push(r);
    }
  }
  if (opts.cases.includes('outage')) {
    for (const variant of opts.outageVariants ?? Object.keys(OUTAGE_VARIANTS)) {
      progress(`outage of ${opts.outageSeconds} s and catch-up: ${variant}`);
      const r = await runOutage(variant, root, { opts, inputFile, logsScript });
      if (!r.failed)
        progress(
          `  peak RSS ${r.outagePeakMb.toFixed(1)} MB in the outage, ${r.catchUpPeakMb.toFixed(1)} MB in the catch-up (${r.catchUpSeconds.toFixed(1)} s), ${r.exact ? 'every line once' : 'NOT every line once'}`,
        );
      outage.push(r);
    }
  }
  return { rotation, outage };
}

export function faultReport(opts, { rotation, outage }) {
  const lines = [];
  const targets = [];
  if (rotation.length > 0) {
    lines.push(
      `## Rotation with kill -9 restarts: ${fmtInt(opts.rotationLines)} lines at ${fmtInt(opts.rotationRate)} a second, renamed every ${opts.renameMs} ms, ${opts.kills} restarts`,
      '',
    );
    lines.push(
      table(
        ['contender', 'lost', 'duplicated', 'per restart', 'renames', 'restart (kill → ready)', 'all in'],
        rotation.map((r) =>
          r.failed
            ? [r.name, `did not start: ${tail(r.failed, 120)}`, '', '', '', '', '']
            : [
                r.name,
                fmtInt(r.lost),
                fmtInt(r.duplicated),
                r.restarts > 0
                  ? `${fmtInt(r.duplicated / r.restarts)}${r.batch ? ` (batch ${fmtInt(r.batch)})` : ''}`
                  : '—',
                String(r.renames),
                r.restarts > 0
                  ? `${Math.round(Math.min(...r.downtimeMs))}–${Math.round(Math.max(...r.downtimeMs))} ms`
                  : '—',
                r.complete ? `${r.seconds.toFixed(1)} s` : '—',
              ],
        ),
      ),
      '',
      'Each contender follows only the live name (`app.log`); the app renames it to `app.log.<n>` and writes a new one. ' +
        'It is killed with SIGKILL once it has run for ' +
        `${opts.killAfterMs} ms since it was ready, and started again at once on the same state (syslog-ng's persist file, pillion's data directory). ` +
        'Lost and duplicated: `seq` values missing from, or repeated in, the output once nothing more arrived for 5 s.',
      '',
    );
    const sng = rotation.find((r) => r.name === 'syslog-ng' && !r.failed);
    const pil = rotation.find((r) => r.name === 'pillion' && !r.failed);
    if (pil) {
      targets.push({
        target: `rotation with restarts: pillion loses no line${sng && sng.lost > 0 ? ` (syslog-ng lost ${fmtInt(sng.lost)})` : ''}`,
        shown: fmtInt(pil.lost),
        result: pil.lost === 0 ? 'met' : 'missed',
      });
      targets.push({
        target: 'rotation with restarts: pillion repeats at most one batch per restart',
        shown: `${fmtInt(pil.duplicated)} ≤ ${fmtInt(pil.restarts * pil.batch)}`,
        result: pil.duplicated <= pil.restarts * pil.batch ? 'met' : 'missed',
      });
    }
  }
  if (outage.length > 0) {
    lines.push(
      `## Resident memory through a ${opts.outageSeconds} s sink outage and its catch-up (${fmtInt(opts.lines)} lines)`,
      '',
    );
    lines.push(
      table(
        ['pillion', 'peak RSS, outage', 'peak RSS, catch-up', 'VmHWM', 'catch-up', 'every line once'],
        outage.map((r) =>
          r.failed
            ? [r.label, `did not start: ${tail(r.failed, 120)}`, '', '', '', '']
            : [
                r.label,
                `${r.outagePeakMb.toFixed(1)} MB`,
                `${r.catchUpPeakMb.toFixed(1)} MB`,
                `${r.hwmMb.toFixed(1)} MB`,
                `${r.catchUpSeconds.toFixed(1)} s`,
                r.exact ? 'yes' : 'no',
              ],
        ),
      ),
      '',
      'tail → json → enrich → http sink into a receiver that answers 503 for the outage, then 200; the whole input file appears at the start of the outage. ' +
        '"two sinks": a file sink that keeps delivering beside the http sink that is down. RSS of the process tree sampled every 20 ms.',
      '',
    );
    for (const r of outage) {
      if (r.failed) continue;
      const peak = Math.max(r.outagePeakMb, r.catchUpPeakMb, r.hwmMb);
      targets.push({
        target: `${r.label}: peak RSS ≤ 150 MB through the outage and catch-up`,
        shown: `${peak.toFixed(1)} MB`,
        result: peak <= 150 ? 'met' : 'missed',
      });
    }
  }
  return { lines, targets };
}
