// Runs a real clickhouse-server for tests: a throwaway config in a temp dir, loopback on free
// ports, its own process group so nothing outlives the test process.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'undici';
import { freePort } from '../../lib/free-port.js';

export const CLICKHOUSE_BINARY = '/usr/sbin/clickhouse-server';

/** A user with a password, besides `default` (no password): for auth tests. */
export const CLICKHOUSE_WRITER = { user: 'writer', password: 'wr1ter-Pa55' } as const;

export interface StartedClickhouse {
  /** http://127.0.0.1:<http_port> */
  url: string;
  /** Runs a statement as `default` and returns the reply text; rejects on an error reply. */
  query(sql: string): Promise<string>;
  /** Kills the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15_000;

export async function startClickhouse(): Promise<StartedClickhouse> {
  try {
    accessSync(CLICKHOUSE_BINARY, constants.X_OK);
  } catch {
    throw new Error(
      `${CLICKHOUSE_BINARY} is missing: run \`scripts/install-peers.sh clickhouse-server\` (Debian package clickhouse-server)`,
    );
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce();
    } catch (err) {
      // Another process may take a port between probing and binding: retry on fresh ports.
      lastError = err;
    }
  }
  throw lastError;
}

function configXml(dir: string, httpPort: number, tcpPort: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
</yandex>
`;
}

function usersXml(): string {
  const user = (name: string, password: string) =>
    `<${name}><password>${password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></${name}>`;
  return `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>${user('default', '')}${user(CLICKHOUSE_WRITER.user, CLICKHOUSE_WRITER.password)}</users>
  <quotas><default></default></quotas>
</yandex>
`;
}

async function startOnce(): Promise<StartedClickhouse> {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-clickhouse-'));
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'tmp'));
  const [httpPort, tcpPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'config.xml'), configXml(dir, httpPort, tcpPort));
  writeFileSync(join(dir, 'users.xml'), usersXml());
  const logPath = join(dir, 'server.log');
  const logFd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(CLICKHOUSE_BINARY, [`--config-file=${join(dir, 'config.xml')}`], {
      cwd: dir,
      stdio: ['ignore', logFd, logFd],
      detached: true, // its own process group, killed as a whole
    });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  const killGroup = (signal: NodeJS.Signals) => {
    if (pid === undefined || exited) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  };
  // If the test process dies without stop(), the server must not stay behind.
  const onExit = () => {
    killGroup('SIGKILL');
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // the dying server may still hold a file; a leftover temp dir is harmless
    }
  };
  process.on('exit', onExit);

  const url = `http://127.0.0.1:${httpPort}`;
  const client = new Client(url, { keepAliveTimeout: 1000 });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await client.destroy();
    // Its data is thrown away, and a graceful stop waits seconds for open client connections.
    killGroup('SIGKILL');
    await exitedPromise;
    process.off('exit', onExit);
    rmSync(dir, { recursive: true, force: true });
  };

  const query = async (sql: string): Promise<string> => {
    const res = await client.request({ path: '/', method: 'POST', body: sql });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`ClickHouse answered ${res.statusCode}: ${text.trim()}`);
    return text;
  };

  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exited) throw new Error(`clickhouse-server exited during start-up:\n${logTail(logPath)}`);
      if (await ping(client)) break;
      if (Date.now() > deadline)
        throw new Error(`clickhouse-server did not answer /ping:\n${logTail(logPath)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, query, stop };
}

async function ping(client: Client): Promise<boolean> {
  try {
    const res = await client.request({
      path: '/ping',
      method: 'GET',
      headersTimeout: 1000,
      bodyTimeout: 1000,
    });
    const text = await res.body.text();
    return res.statusCode === 200 && text.trim() === 'Ok.';
  } catch {
    return false;
  }
}

function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-4000);
  } catch {
    return '(no log)';
  }
}
