// The process's own logs: JSON lines for machines, or pretty lines when a person is watching.
// An operational error (a port in use, a missing file: a PillionError or a system error) is one
// line: its message as `reason`, no stack. A stack is for bugs, or for whoever asked for debug.

import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import { PillionError } from '../lib/errors.js';

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
  let logger: Logger | undefined;
  const debug = () => logger?.isLevelEnabled('debug') ?? false;
  const base = {
    level: opts.level,
    base: { service: 'pillion' },
    formatters: { log: (obj: Record<string, unknown>) => operationalErrorAsReason(obj, debug()) },
  };
  if (opts.format === 'pretty' || (opts.format === 'auto' && isTTY)) {
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    logger = pino(
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
    return logger;
  }
  logger = pino(
    {
      ...base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { ...base.formatters, level: (label) => ({ level: label }) },
    },
    pino.destination({ fd, sync: true }),
  );
  return logger;
}

/** Errors of the world the process runs in, not of its code: they need a reason, not a stack. */
export function isOperationalError(err: unknown): err is Error {
  if (err instanceof PillionError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/**
 * Replaces `err` by `reason` (its message, once) when the error is operational and debug is off,
 * so the line stays one line; the error's code goes to `code` unless the line has one.
 */
export function operationalErrorAsReason(
  obj: Record<string, unknown>,
  debug: boolean,
): Record<string, unknown> {
  const err = obj.err;
  if (debug || !isOperationalError(err)) return obj;
  const { err: _err, ...rest } = obj;
  const out: Record<string, unknown> = { ...rest };
  out[out.reason === undefined ? 'reason' : 'errorReason'] = err.message;
  if (out.code === undefined && err instanceof PillionError) out.code = err.code;
  return out;
}

/**
 * The most specific code of an error and its causes ("module inbound failed to start" wraps
 * "listener cannot listen": the second says more), for a log line that carries no `err`.
 */
export function errorCode(err: unknown): string | undefined {
  let code: string | undefined;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof PillionError) code = e.code;
  }
  return code;
}
