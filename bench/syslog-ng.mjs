// Starting Debian's syslog-ng for the log benchmarks: in the foreground on a config, a persist
// file, a pid file and a control socket, ready once the pid file is written and the control
// socket accepts a connection.

import fs from 'node:fs';
import { PeerStartError, canConnect, isRunning, sleep, startProcess, stopProcess, tail } from './lib.mjs';

export const SYSLOG_NG = '/usr/sbin/syslog-ng';

/** Starts syslog-ng and resolves with its process once it is ready; throws PeerStartError if not. */
export async function startSyslogNg({ conf, persist, pidFile, ctl, deadlineMs, pollMs = 20 }) {
  fs.rmSync(pidFile, { force: true });
  const child = startProcess('syslog-ng', SYSLOG_NG, [
    '-F',
    '--no-caps',
    '-f',
    conf,
    '-R',
    persist,
    '-p',
    pidFile,
    '--control',
    ctl,
  ]);
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (!isRunning(child)) {
      const r = await child.exited;
      throw new PeerStartError(
        `syslog-ng exited (${r.signal ?? `code ${r.code}`}): ${tail(child.stderrText) || '(no output)'}`,
      );
    }
    if (fs.existsSync(pidFile) && (await canConnect(ctl))) return child;
    if (Date.now() > deadline) {
      await stopProcess(child);
      throw new PeerStartError(`syslog-ng not ready within ${deadlineMs} ms: ${tail(child.stderrText)}`);
    }
    await sleep(pollMs);
  }
}
