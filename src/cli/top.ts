// `pillion top`: a refreshing view of a running sidecar's host and processes, read from its admin
// API (GET /top, the text table), like top. --once prints one view (scripts, tests).

import { request } from 'node:http';
import { parseAddress } from '../lib/address.js';
import { parseDuration } from '../lib/duration.js';

interface TopOpts {
  admin: string;
  sort: string;
  limit?: string;
  scope?: string;
  interval: string;
  once?: boolean;
}

function fetchTable(host: string, port: number, query: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path: `/top?${query}`,
        headers: { accept: 'text/plain' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5s')));
    req.on('error', reject);
    req.end();
  });
}

export async function topCommand(opts: TopOpts): Promise<number> {
  const address = parseAddress(opts.admin.includes(':') ? opts.admin : `127.0.0.1:${opts.admin}`);
  if (!address.ok) {
    process.stderr.write(
      `pillion top: PILLION_ERR_CLI_BAD_OPTION --admin ${opts.admin}: ${address.reason}\n`,
    );
    return 2;
  }
  const interval = parseDuration(opts.interval);
  if (!interval.ok) {
    process.stderr.write(
      `pillion top: PILLION_ERR_CLI_BAD_OPTION --interval ${opts.interval}: ${interval.reason}\n`,
    );
    return 2;
  }
  const query = new URLSearchParams({ sort: opts.sort });
  if (opts.limit !== undefined) query.set('limit', opts.limit);
  if (opts.scope !== undefined) query.set('scope', opts.scope);
  const host = address.value.host || '127.0.0.1';
  const live = !opts.once && process.stdout.isTTY;
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (;;) {
      const rows = live ? Math.max(5, (process.stdout.rows ?? 40) - 1) : undefined;
      if (rows !== undefined) query.set('limit', String(Math.min(Number(opts.limit ?? 1e6), rows - 8)));
      let out: { status: number; body: string };
      try {
        out = await fetchTable(host, address.value.port, query.toString());
      } catch (err) {
        process.stderr.write(
          `pillion top: cannot reach the admin API at ${host}:${address.value.port} (${(err as Error).message}); is pillion run going, and is --admin its admin.listen?\n`,
        );
        return 1;
      }
      if (out.status !== 200) {
        process.stderr.write(`pillion top: ${out.body}`);
        return 1;
      }
      const width = process.stdout.columns ?? 200;
      const body = live
        ? out.body
            .split('\n')
            .map((l) => (l.length > width ? l.slice(0, width) : l))
            .join('\n')
        : out.body;
      // Clear the screen and go home, as top does between refreshes.
      process.stdout.write(live ? `\x1b[H\x1b[2J${body}` : body);
      if (!live || stop) return 0;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval.value);
        const check = setInterval(() => {
          if (stop) {
            clearTimeout(t);
            clearInterval(check);
            resolve();
          }
        }, 100);
        setTimeout(() => clearInterval(check), interval.value);
      });
      if (stop) return 0;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
