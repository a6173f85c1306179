// ClickHouse sink driver: one `INSERT ... FORMAT JSONEachRow` over the HTTP interface per batch,
// with ClickHouse's own error code deciding whether a failed insert is worth retrying.

import type { ClickhouseSinkConfig } from '../config.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import {
  detailOf,
  type DriverDeps,
  encodeNdjson,
  HttpDelivery,
  type Reply,
  splitUrl,
  withUnencodable,
} from './http-delivery.js';

/**
 * Error codes that mean the same insert will fail again: the table, the query or the data is
 * wrong, or the credentials are (src/Common/ErrorCodes.cpp; the older ones as of 18.16). Any other
 * code (memory, too many parts, quotas, timeouts, replicas) is retried.
 */
const PERMANENT_CODES = new Map<number, string>([
  [6, 'CANNOT_PARSE_TEXT'],
  [8, 'THERE_IS_NO_COLUMN'],
  [16, 'NO_SUCH_COLUMN_IN_TABLE'],
  [20, 'NUMBER_OF_COLUMNS_DOESNT_MATCH'],
  [25, 'CANNOT_PARSE_ESCAPE_SEQUENCE'],
  [26, 'CANNOT_PARSE_QUOTED_STRING'],
  [27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'],
  [32, 'ATTEMPT_TO_READ_AFTER_EOF'],
  [33, 'CANNOT_READ_ALL_DATA'],
  [36, 'BAD_ARGUMENTS'],
  [38, 'CANNOT_PARSE_DATE'],
  [41, 'CANNOT_PARSE_DATETIME'],
  [43, 'ILLEGAL_TYPE_OF_ARGUMENT'],
  [44, 'ILLEGAL_COLUMN'],
  [47, 'UNKNOWN_IDENTIFIER'],
  [48, 'NOT_IMPLEMENTED'],
  [53, 'TYPE_MISMATCH'],
  [60, 'UNKNOWN_TABLE'],
  [62, 'SYNTAX_ERROR'],
  [69, 'ARGUMENT_OUT_OF_BOUND'],
  [70, 'CANNOT_CONVERT_TYPE'],
  [72, 'CANNOT_PARSE_NUMBER'],
  [73, 'UNKNOWN_FORMAT'],
  [80, 'INCORRECT_QUERY'],
  [81, 'UNKNOWN_DATABASE'],
  [108, 'NO_DATA_TO_INSERT'],
  [115, 'UNKNOWN_SETTING'],
  [117, 'INCORRECT_DATA'],
  [130, 'CANNOT_READ_ARRAY_FROM_TEXT'],
  [131, 'TOO_LARGE_STRING_SIZE'],
  [164, 'READONLY'],
  [169, 'BAD_TYPE_OF_FIELD'],
  [192, 'UNKNOWN_USER'],
  [193, 'WRONG_PASSWORD'],
  [194, 'REQUIRED_PASSWORD'],
  [195, 'IP_ADDRESS_NOT_ALLOWED'],
  [291, 'DATABASE_ACCESS_DENIED'],
  [321, 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE'],
  [349, 'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN'],
  [354, 'ZLIB_INFLATE_FAILED'],
  [376, 'CANNOT_PARSE_UUID'],
  [407, 'DECIMAL_OVERFLOW'],
  [441, 'CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING'],
  [452, 'SETTING_CONSTRAINT_VIOLATION'],
  [467, 'CANNOT_PARSE_BOOL'],
  [469, 'VIOLATED_CONSTRAINT'],
  [471, 'INVALID_SETTING_VALUE'],
  [472, 'READONLY_SETTING'],
  [497, 'ACCESS_DENIED'],
  [516, 'AUTHENTICATION_FAILED'],
]);

const CODE = /\bCode: (\d+)/;

/** A ClickHouse identifier in backquotes; backslash escapes work in every version (18.16 included). */
export function quoteIdentifier(name: string): string {
  return `\`${name.replace(/[\\`]/g, (c) => `\\${c}`)}\``;
}

export function createClickhouseDriver(cfg: ClickhouseSinkConfig, deps: DriverDeps = {}): SinkDriver {
  return new ClickhouseDriver(cfg, deps);
}

class ClickhouseDriver implements SinkDriver {
  #http: HttpDelivery;
  #path: string;

  constructor(cfg: ClickhouseSinkConfig, deps: DriverDeps) {
    const url = splitUrl(cfg.url);
    // Credentials in the URL are used when the config names no user; they go in headers, not the query string.
    const user = cfg.user ?? url.user;
    const password = cfg.user === undefined ? (cfg.password ?? url.password) : cfg.password;
    const headers: Record<string, string> = {};
    if (user !== undefined || password !== undefined) headers['x-clickhouse-user'] = user ?? 'default';
    if (password !== undefined) headers['x-clickhouse-key'] = password;
    this.#http = new HttpDelivery({
      url,
      contentType: 'application/x-ndjson',
      compression: cfg.compression,
      timeoutMs: cfg.retry.timeout,
      headers,
      secrets: [password],
      clock: deps.clock,
    });
    const insert = `INSERT INTO ${quoteIdentifier(cfg.database)}.${quoteIdentifier(cfg.table)} FORMAT JSONEachRow`;
    let query = `query=${encodeURIComponent(insert)}`;
    if (cfg.skipUnknownFields) query += '&input_format_skip_unknown_fields=1';
    // RFC 3339 times (what the timestamp transform writes) parse into DateTime columns only so.
    query += '&date_time_input_format=best_effort';
    this.#path = this.#http.path('/', query);
  }

  async send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    const batch = encodeNdjson(events);
    if (batch.sent.length === 0) return withUnencodable({ kind: 'ok' }, batch.unencodable);
    const reply = await this.#http.send(this.#path, batch.body, signal);
    if (reply.kind === 'failed') return reply;
    if (reply.status >= 200 && reply.status < 300) return withUnencodable({ kind: 'ok' }, batch.unencodable);
    return this.#classify(reply);
  }

  /**
   * ClickHouse answers 500 for bad data and missing tables as for overload, so its error code
   * decides: a known permanent code is not retried; any other code is, whatever the status.
   */
  #classify(reply: Reply): SendOutcome {
    const m = CODE.exec(reply.body);
    if (m === null) return this.#http.classify(reply);
    const code = Number(m[1]);
    const name = PERMANENT_CODES.get(code);
    const message = clickhouseMessage(reply.body);
    const reason = `HTTP ${reply.status}: ClickHouse error ${code}${name === undefined ? '' : ` (${name})`}: ${message}`;
    return { kind: 'failed', retry: name === undefined, reason, status: reply.status };
  }

  async close(): Promise<void> {
    await this.#http.close();
  }
}

/** The exception text without the boilerplate around it (18.16: `e.displayText() = ...`). */
function clickhouseMessage(body: string): string {
  const text = body
    .replace(/^\s*Code: \d+[.,]\s*/, '')
    .replace(/^e\.displayText\(\) = /, '')
    .replace(/,\s*e\.what\(\) = DB::Exception\s*$/, '');
  return detailOf(text);
}
