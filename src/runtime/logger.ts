// The process's own logs: JSON lines for machines, or pretty lines when a person is watching.

import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

// pino-pretty and what it pulls in cost several MB of memory; load it only when a person reads the logs.
const require = createRequire(import.meta.url);

export type { Logger };
export type LogFormat = 'auto' | 'json' | 'pretty';

export function createLogger(opts: {
  level: string;
  format: LogFormat;
  isTTY?: boolean;
  fd?: 1 | 2;
}): Logger {
  const fd = opts.fd ?? 1;
  const isTTY = opts.isTTY ?? (fd === 1 ? process.stdout : process.stderr).isTTY === true;
  const base = { level: opts.level, base: { service: 'pillion' } };
  if (opts.format === 'pretty' || (opts.format === 'auto' && isTTY)) {
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino(
      base,
      pretty({
        colorize: isTTY,
        sync: true,
        destination: fd,
        singleLine: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,service',
      }),
    );
  }
  return pino(
    {
      ...base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd, sync: true }),
  );
}
