// One route's transformation, compiled once at config load: the request side (body read, rewritten
// by a JSONata expression, written; headers mapped) and the response side (the same, and status
// codes mapped). Engines hand it whole bodies and heads as plain arrays; it answers the new ones
// or a failure to send the client. An expression's error is logged with the expression, never
// with the body or a value taken from it.

import jsonata from 'jsonata';
import type { Logger } from 'pino';
import type { LogLimiter } from '../../lib/log-limiter.js';
import type { ErrorCode } from '../../lib/errors.js';
import type { Series } from '../../metrics/index.js';
import { BodyFormatError, CONTENT_TYPES, decodeBody, encodeBody } from './codecs.js';
import type { BodyFormat, RequestSideConfig, ResponseSideConfig, TransformConfig } from './config.js';

/** Header fields as lower-case names and values. */
export type Fields = [string, string][];

export interface TransformedRequest {
  headers: Fields;
  body: Buffer;
}

export interface TransformedResponse {
  status: number;
  headers: Fields;
  body: Buffer;
}

/** What the client gets instead: a status and a coded JSON body. */
export interface TransformFailure {
  failed: true;
  status: number;
  code: ErrorCode;
  body: string;
}

/** The request as the response expression sees it ($request). */
export interface RequestView {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
}

/** A syntax error in an expression, with its offset in the expression. */
export class ExpressionError extends Error {
  readonly position: number | undefined;
  constructor(message: string, position: number | undefined) {
    super(message);
    this.position = position;
  }
}

/** Compiles a JSONata expression, or throws an ExpressionError saying where it is wrong. */
export function compileExpression(source: string): jsonata.Expression {
  try {
    return jsonata(source);
  } catch (err) {
    const e = err as { message?: string; position?: number; code?: string };
    throw new ExpressionError(`${e.code ?? 'S0000'}: ${e.message ?? String(err)}`, e.position);
  }
}

/** Outcomes counted per route and side. */
export const RESULTS = ['ok', 'too_large', 'bad_body', 'expression_error', 'bad_result'] as const;
export type TransformResult = (typeof RESULTS)[number];

export interface TransformDeps {
  logger: Logger;
  limiter: LogLimiter;
  /** The counter of each side and result. */
  count(side: 'request' | 'response', result: TransformResult): Series;
}

interface Side {
  from: BodyFormat | undefined;
  to: BodyFormat;
  /** Whether the body is read at all (else it passes as it is). */
  converts: boolean;
  expr: jsonata.Expression | undefined;
  source: string;
  set: Fields;
  add: Fields;
  remove: Set<string>;
}

function side(cfg: RequestSideConfig | ResponseSideConfig): Side {
  const converts = cfg.body !== undefined || cfg.from !== undefined || cfg.to !== undefined;
  const lower = (o: Record<string, string>): Fields =>
    Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]);
  return {
    from: converts ? (cfg.from ?? 'json') : undefined,
    to: cfg.to ?? 'json',
    converts,
    expr: cfg.body !== undefined ? compileExpression(cfg.body) : undefined,
    source: cfg.body ?? '',
    set: lower(cfg.headers.set),
    add: lower(cfg.headers.add),
    remove: new Set(cfg.headers.remove.map((h) => h.toLowerCase())),
  };
}

/** Framing is the proxy's own: never copied from a transformed message. */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

export class RouteTransform {
  readonly route: string;
  readonly maxBodyBytes: number;
  readonly #req: Side | undefined;
  readonly #res: Side | undefined;
  readonly #status: Map<number, number>;
  readonly #deps: TransformDeps;

  constructor(route: string, cfg: TransformConfig, deps: TransformDeps) {
    this.route = route;
    this.maxBodyBytes = cfg.maxBodyBytes;
    this.#req = cfg.request ? side(cfg.request) : undefined;
    this.#res = cfg.response ? side(cfg.response) : undefined;
    this.#status = new Map(Object.entries(cfg.response?.status ?? {}).map(([k, v]) => [Number(k), v]));
    this.#deps = deps;
  }

  /** Whether the request is buffered and rewritten (else it streams as on any route). */
  get request(): boolean {
    return this.#req !== undefined;
  }

  /** Whether the response is buffered and rewritten. */
  get response(): boolean {
    return this.#res !== undefined;
  }

  /** The request as the expressions see it, taken before it is rewritten. */
  view(
    method: string,
    path: string,
    query: string,
    lower: readonly string[],
    values: readonly string[],
  ): RequestView {
    return { method, path, query: queryObject(query), headers: fieldsObject(lower, values) };
  }

  /** A body over maxBodyBytes: 413 for a request, 502 for a response. Counted. */
  tooLarge(which: 'request' | 'response'): TransformFailure {
    this.#deps.count(which, 'too_large').value++;
    this.#log(which, 'too_large', `the ${which} body is over maxBodyBytes (${this.maxBodyBytes})`);
    return failure(
      which === 'request' ? 413 : 502,
      'PILLION_ERR_PROXY_TRANSFORM_TOO_LARGE',
      `the ${which} body is over the route's transform.maxBodyBytes (${this.maxBodyBytes} bytes)`,
    );
  }

  async onRequest(
    view: RequestView,
    lower: readonly string[],
    values: readonly string[],
    body: Buffer,
  ): Promise<TransformedRequest | TransformFailure> {
    const s = this.#req!;
    const out = await this.#body('request', s, body, {
      method: view.method,
      path: view.path,
      query: view.query,
      headers: view.headers,
    });
    if ('failed' in out) return out;
    this.#deps.count('request', 'ok').value++;
    return { headers: mapHeaders(lower, values, s, out.contentType), body: out.body };
  }

  async onResponse(
    request: RequestView,
    status: number,
    lower: readonly string[],
    values: readonly string[],
    body: Buffer,
  ): Promise<TransformedResponse | TransformFailure> {
    const s = this.#res!;
    const out = await this.#body('response', s, body, {
      status,
      headers: fieldsObject(lower, values),
      request,
    });
    if ('failed' in out) return out;
    this.#deps.count('response', 'ok').value++;
    return {
      status: this.#status.get(status) ?? status,
      headers: mapHeaders(lower, values, s, out.contentType),
      body: out.body,
    };
  }

  async #body(
    which: 'request' | 'response',
    s: Side,
    body: Buffer,
    bindings: Record<string, unknown>,
  ): Promise<{ body: Buffer; contentType: string | undefined } | TransformFailure> {
    if (!s.converts) return { body, contentType: undefined };
    let value: unknown;
    try {
      value = decodeBody(body, s.from!);
    } catch (err) {
      this.#deps.count(which, 'bad_body').value++;
      const why = (err as Error).message;
      this.#log(which, 'bad_body', `${why} (from: ${s.from})`);
      // A client's body that is not what the route declares is the client's error; an
      // upstream's is the proxy's to report as a bad gateway.
      return failure(
        which === 'request' ? 400 : 502,
        'PILLION_ERR_PROXY_TRANSFORM_BAD_BODY',
        `the ${which} body does not read as ${s.from}: ${why}`,
      );
    }
    if (s.expr !== undefined) {
      try {
        value = await s.expr.evaluate(value, bindings);
      } catch (err) {
        this.#deps.count(which, 'expression_error').value++;
        const why = expressionError(err);
        this.#log(which, 'expression_error', why, s.source);
        return failure(502, 'PILLION_ERR_PROXY_TRANSFORM_FAILED', `the ${which} expression failed: ${why}`);
      }
    }
    try {
      const out = encodeBody(plain(value), s.to);
      return { body: out, contentType: value === undefined ? undefined : CONTENT_TYPES[s.to] };
    } catch (err) {
      this.#deps.count(which, 'bad_result').value++;
      const why = err instanceof BodyFormatError ? err.message : 'the result cannot be written';
      this.#log(which, 'bad_result', `${why} (to: ${s.to})`, s.source);
      return failure(502, 'PILLION_ERR_PROXY_TRANSFORM_FAILED', `the ${which} transform's result: ${why}`);
    }
  }

  #log(which: string, result: string, why: string, expression?: string): void {
    const skipped = this.#deps.limiter.admit(`transform:${this.route}:${which}:${result}`);
    if (skipped === -1) return;
    this.#deps.logger.warn(
      { route: this.route, side: which, result, expression, skipped },
      `transform failed: ${why}`,
    );
  }
}

function failure(status: number, code: ErrorCode, message: string): TransformFailure {
  return { failed: true, status, code, body: `${JSON.stringify({ error: { code, message } })}\n` };
}

/** JSONata's message with any value taken from the input left out (it may be part of a body). */
function expressionError(err: unknown): string {
  const e = err as { message?: string; code?: string; position?: number; value?: unknown };
  let msg = e.message ?? String(err);
  if (e.value !== undefined) {
    const v = typeof e.value === 'string' ? e.value : JSON.stringify(e.value);
    if (v !== undefined && v !== '') msg = msg.split(v).join('…');
  }
  return `${e.code ?? 'error'}${e.position !== undefined ? ` at character ${e.position}` : ''}: ${msg}`;
}

/**
 * JSONata results may carry its sequence markers and functions; JSON keeps the data alone. A
 * function in the result is not data: written as nothing, as JSON.stringify does.
 */
function plain(v: unknown): unknown {
  return v === undefined ? undefined : (JSON.parse(JSON.stringify(v) ?? 'null') as unknown);
}

/** Lower-case names to values; repeated fields joined with ", " (Set-Cookie with "\n"). */
export function fieldsObject(lower: readonly string[], values: readonly string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < lower.length; i++) {
    const k = lower[i]!;
    const had = o[k];
    o[k] = had === undefined ? values[i]! : `${had}${k === 'set-cookie' ? '\n' : ', '}${values[i]}`;
  }
  return o;
}

/** A query string ("?a=1&a=2&b=x", or "") as an object; repeated names give lists. */
export function queryObject(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (query.length <= 1) return out;
  for (const [k, v] of new URLSearchParams(query.slice(1))) {
    const had = out[k];
    if (had === undefined) out[k] = v;
    else if (Array.isArray(had)) had.push(v);
    else out[k] = [had, v];
  }
  return out;
}

function mapHeaders(
  lower: readonly string[],
  values: readonly string[],
  s: Side,
  contentType: string | undefined,
): Fields {
  const out: Fields = [];
  const replaced = (l: string) =>
    FRAMING.has(l) ||
    s.remove.has(l) ||
    s.set.some((x) => x[0] === l) ||
    (s.converts && l === 'content-type');
  for (let i = 0; i < lower.length; i++) if (!replaced(lower[i]!)) out.push([lower[i]!, values[i]!]);
  if (contentType !== undefined && !s.set.some((x) => x[0] === 'content-type'))
    out.push(['content-type', contentType]);
  for (const h of s.set) out.push([h[0], h[1]]);
  for (const h of s.add) out.push([h[0], h[1]]);
  return out;
}
