// Runs a real syslog-ng (Debian syslog-ng-core 3.38) for tests: an RFC 5424 `syslog()` source on
// 127.0.0.1 (TCP or TLS, octet-counted) writing every message it parsed as one JSON line to a file.
// Everything it needs (config, persist file, pid file, control socket) lives in a temp dir.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '../../lib/wait-for.js';
import { freePort } from '../../lib/free-port.js';

const BINARY = '/usr/sbin/syslog-ng';

export interface SyslogNgOptions {
  /** Listen with TLS; clients need no certificate (peer-verify optional-untrusted). */
  tls?: { certFile: string; keyFile: string };
  /** Listen on this port (to restart on the port a client already knows); a free one by default. */
  port?: number;
}

export interface SyslogNg {
  port: number;
  /** The file every received message is written to, one JSON object per line. */
  file: string;
  /**
   * The lines written so far. Each is `$(format-json)` of the parsed message: PROGRAM, HOST,
   * MESSAGE, PRI, FACILITY, SEVERITY, ISODATE, PID, MSGID and the structured data.
   */
  lines(): string[];
  /** Kills syslog-ng and removes its temp dir (read lines() first). */
  stop(): Promise<void>;
}

export async function startSyslogNg(opts: SyslogNgOptions = {}): Promise<SyslogNg> {
  if (!existsSync(BINARY))
    throw new Error(
      `${BINARY} not found: run \`scripts/install-peers.sh syslog-ng\` (Debian syslog-ng-core)`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'pillion-syslog-ng-'));
  const port = opts.port ?? (await freePort());
  const file = join(dir, 'received.ndjson');
  const conf = join(dir, 'syslog-ng.conf');
  writeFileSync(conf, config(port, file, opts.tls));
  const args = [
    '-F',
    '-f',
    conf,
    '-R',
    join(dir, 'persist'),
    '-p',
    join(dir, 'pid'),
    '--control',
    join(dir, 'ctl'),
  ];
  try {
    await promisify(execFile)(BINARY, ['--syntax-only', '-f', conf]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`syslog-ng rejected its test config: ${(err as { stderr?: string }).stderr ?? err}`, {
      cause: err,
    });
  }

  const child = spawn(BINARY, [...args, '--no-caps', '--stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (stderr.length < 16_384) stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  try {
    await waitFor(
      async () => {
        if (exitedEarly) throw new Error(`syslog-ng exited: ${stderr.trim()}`);
        return accepts(port);
      },
      { what: `syslog-ng on 127.0.0.1:${port}`, timeoutMs: 10_000 },
    );
  } catch (err) {
    await kill(child, exited);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    port,
    file,
    lines: () =>
      existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
        : [],
    async stop() {
      await kill(child, exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function config(port: number, file: string, tls: SyslogNgOptions['tls']): string {
  const transport = tls
    ? `transport("tls") tls(key-file(${q(tls.keyFile)}) cert-file(${q(tls.certFile)}) peer-verify(optional-untrusted))`
    : 'transport("tcp")';
  return `@version: 3.38
options {
  stats-freq(0); flush-lines(1); time-reopen(1); keep-hostname(yes); chain-hostnames(no);
  use-dns(no); dns-cache(no); frac-digits(6); log-fifo-size(100000); create-dirs(no);
};
source s_in {
  syslog(ip("127.0.0.1") port(${port}) ${transport}
    max-connections(16) log-iw-size(16000) log-msg-size(1048576));
};
destination d_file {
  file(${q(file)} template("$(format-json --scope rfc5424 --scope nv-pairs --key ISODATE --key PRI --key FACILITY --key SEVERITY)\\n"));
};
log { source(s_in); destination(d_file); flags(flow-control); };
`;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
