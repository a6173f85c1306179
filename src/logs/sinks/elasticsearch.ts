// Elasticsearch/OpenSearch sink driver: one `_bulk` request per batch; the per-item results of a
// bulk reply split the batch into stored, retried (429, 5xx, rejected execution) and dead-lettered.

import type { ElasticsearchSinkConfig } from '../config.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import {
  basicAuth,
  classifyStatus,
  detailOf,
  type DriverDeps,
  encodeNdjson,
  HttpDelivery,
  type Reply,
  splitUrl,
  withUnencodable,
} from './http-delivery.js';

/** A bulk reply holds one item per event; this bounds what is read of it. */
const REPLY_LIMIT = 64 * 1024 * 1024;
/** Only what classification needs: the reply shrinks from ~150 to ~30 bytes per stored event. */
const FILTER = 'filter_path=errors,items.*.status,items.*.error';

export function createElasticsearchDriver(cfg: ElasticsearchSinkConfig, deps: DriverDeps = {}): SinkDriver {
  return new ElasticsearchDriver(cfg, deps);
}

class ElasticsearchDriver implements SinkDriver {
  #http: HttpDelivery;
  #path: string;
  #action: string;
  /** The action line every document follows, serialized once. */
  #prefix: string;

  constructor(cfg: ElasticsearchSinkConfig, deps: DriverDeps) {
    const url = splitUrl(cfg.url);
    const headers: Record<string, string> = {};
    const user = cfg.user ?? url.user;
    const password = cfg.user === undefined ? (cfg.password ?? url.password) : cfg.password;
    if (cfg.apiKey !== undefined) headers.authorization = `ApiKey ${cfg.apiKey}`;
    else if (user !== undefined) headers.authorization = basicAuth(user, password);
    this.#http = new HttpDelivery({
      url,
      contentType: 'application/x-ndjson',
      compression: cfg.compression,
      timeoutMs: cfg.retry.timeout,
      headers,
      secrets: [password, cfg.apiKey],
      clock: deps.clock,
    });
    this.#path = this.#http.path('/_bulk', FILTER);
    this.#action = cfg.action;
    this.#prefix = `${JSON.stringify({ [cfg.action]: { _index: cfg.index } })}\n`;
  }

  async send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    const batch = encodeNdjson(events, this.#prefix);
    if (batch.sent.length === 0) return withUnencodable({ kind: 'ok' }, batch.unencodable);
    const reply = await this.#http.send(this.#path, batch.body, signal, REPLY_LIMIT);
    if (reply.kind === 'failed') return reply;
    if (reply.status < 200 || reply.status >= 300)
      return classifyStatus(reply.status, errorDetail(reply), reply.retryAfter);
    return withUnencodable(this.#items(reply, batch.sent), batch.unencodable);
  }

  /** Reads a 2xx bulk reply: `errors: false` is all stored; otherwise each item is looked at. */
  #items(reply: Reply, sent: LogEvent[]): SendOutcome {
    let parsed: { errors?: unknown; items?: unknown };
    try {
      parsed = JSON.parse(reply.body) as typeof parsed;
    } catch {
      // A cut or garbled reply (a proxy, a dropped connection) says nothing about what was stored.
      return { kind: 'failed', retry: true, reason: 'the bulk reply is not JSON', status: reply.status };
    }
    if (parsed === null || typeof parsed !== 'object') {
      return { kind: 'failed', retry: true, reason: 'the bulk reply is not an object', status: reply.status };
    }
    if (parsed.errors !== true) return { kind: 'ok' };
    const items = parsed.items;
    if (!Array.isArray(items) || items.length !== sent.length) {
      // Some events were stored but which is unknown: resending all would duplicate, so none is.
      const n = Array.isArray(items) ? items.length : 0;
      return {
        kind: 'failed',
        retry: false,
        reason: `the bulk reply holds ${n} items for ${sent.length} events`,
        status: reply.status,
      };
    }
    const retry: LogEvent[] = [];
    const reject: { event: LogEvent; reason: string }[] = [];
    for (let i = 0; i < items.length; i++) {
      const result = itemResult(items[i], this.#action);
      const status = typeof result?.status === 'number' ? result.status : 0;
      if (status >= 200 && status < 300) continue;
      const error = result?.error as { type?: unknown; reason?: unknown } | undefined;
      const type = typeof error?.type === 'string' ? error.type : '';
      if (status === 429 || status >= 500 || type === 'es_rejected_execution_exception') retry.push(sent[i]!);
      else reject.push({ event: sent[i]!, reason: itemReason(status, type, error?.reason) });
    }
    if (retry.length === 0 && reject.length === 0) return { kind: 'ok' };
    return { kind: 'partial', retry, reject };
  }

  async close(): Promise<void> {
    await this.#http.close();
  }
}

function itemResult(item: unknown, action: string): { status?: unknown; error?: unknown } | undefined {
  if (item === null || typeof item !== 'object') return undefined;
  const byAction = (item as Record<string, unknown>)[action] ?? Object.values(item)[0];
  return byAction !== null && typeof byAction === 'object' ? byAction : undefined;
}

function itemReason(status: number, type: string, reason: unknown): string {
  const text = typeof reason === 'string' ? reason : reason === undefined ? '' : JSON.stringify(reason);
  return detailOf(`status ${status}${type === '' ? '' : ` ${type}`}${text === '' ? '' : `: ${text}`}`);
}

/** `{"error":{"type","reason"},"status"}` as `type: reason`, or the body's text. */
function errorDetail(reply: Reply): string {
  try {
    const parsed = JSON.parse(reply.body) as { error?: { type?: unknown; reason?: unknown } | string };
    const e = parsed.error;
    if (typeof e === 'string') return detailOf(e);
    if (e && typeof e.type === 'string') return detailOf(`${e.type}: ${String(e.reason ?? '')}`);
  } catch {
    // not JSON: the text itself
  }
  return detailOf(reply.body);
}
