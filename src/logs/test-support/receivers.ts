// In-process HTTP receivers for sink tests: an Elasticsearch `_bulk` endpoint, a Loki push
// endpoint and a generic NDJSON/JSON endpoint. Each records what it got (gzip bodies inflated) and
// can be scripted to fail, so drivers and runners are tested against real sockets.

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { LogEvent } from '../types.js';

const MAX_BODY = 64 * 1024 * 1024;

export interface ReceivedRequest {
  method: string;
  /** Path and query as requested. */
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The body as it came over the wire (compressed when it was). */
  raw: Buffer;
  /** The body after Content-Encoding: gzip was undone. */
  body: Buffer;
  /** The status it was answered with (0 while held by `hang`). */
  status: number;
  /** The client's port: equal ports on two requests mean the connection was reused. */
  remotePort: number;
}

/** A scripted answer: a status (with an empty body), a full reply, or 'hang' (never answered). */
export type ScriptedReply =
  number | 'hang' | { status: number; body?: string; headers?: Record<string, string> };

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** The next requests get these replies, in order, before the receiver's own handling resumes. */
  script(...replies: ScriptedReply[]): void;
  /** Requests held open by a scripted 'hang' right now. */
  readonly hanging: number;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

type Handler = (req: ReceivedRequest) => Answer;

async function startReceiver(handler: Handler): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const scripted: ScriptedReply[] = [];
  const held = new Set<http.ServerResponse>();
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const rec: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        raw,
        body: raw,
        status: 0,
        remotePort: req.socket.remotePort ?? 0,
      };
      requests.push(rec);
      let answer: Answer;
      if (size > MAX_BODY) answer = { status: 413, body: 'body too large' };
      else if (req.headers['content-encoding'] === 'gzip') {
        try {
          rec.body = gunzipSync(raw);
          answer = reply(rec);
        } catch {
          answer = { status: 400, body: 'body is not valid gzip' };
        }
      } else if (req.headers['content-encoding'] !== undefined) {
        answer = { status: 415, body: 'unsupported content-encoding' };
      } else answer = reply(rec);
      if (answer.status === 0) {
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      }
      rec.status = answer.status;
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  function reply(rec: ReceivedRequest): Answer {
    const next = scripted.shift();
    if (next === undefined) return handler(rec);
    if (next === 'hang') return { status: 0 };
    if (typeof next === 'number') return { status: next };
    return next;
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script: (...replies) => void scripted.push(...replies),
    get hanging() {
      return held.size;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function json(status: number, value: unknown): Answer {
  return { status, body: JSON.stringify(value), headers: { 'content-type': 'application/json' } };
}

// --- Elasticsearch --------------------------------------------------------------------------

export interface EsItemError {
  status: number;
  type: string;
  reason: string;
}

/** What a busy node answers for an item: retryable. */
export const ES_REJECTED: EsItemError = {
  status: 429,
  type: 'es_rejected_execution_exception',
  reason: 'rejected execution of coordinating operation',
};

/** What a document that does not fit the mapping gets: permanent. */
export const ES_MAPPER_PARSING: EsItemError = {
  status: 400,
  type: 'mapper_parsing_exception',
  reason: "failed to parse field [status] of type [long] in document. Preview of field's value: 'abc'",
};

export interface EsDocument {
  action: string;
  index: string;
  doc: LogEvent;
}

export interface EsReceiver extends Receiver {
  /** The documents stored (items that did not fail), in order. */
  documents: EsDocument[];
  /** Decides, per document of each later request, whether its item fails and how. */
  failItems(fn: ((doc: LogEvent, position: number) => EsItemError | undefined) | undefined): void;
}

const ES_ACTIONS = new Set(['create', 'index']);

/**
 * An Elasticsearch `_bulk` endpoint: checks the NDJSON (action lines, trailing newline, content
 * type, optional Authorization) as Elasticsearch does and answers per-item results.
 */
export async function startElasticsearchReceiver(opts: { authorization?: string } = {}): Promise<EsReceiver> {
  const documents: EsDocument[] = [];
  let failItems: ((doc: LogEvent, position: number) => EsItemError | undefined) | undefined;
  let ids = 0;
  const error = (status: number, type: string, reason: string) =>
    json(status, { error: { root_cause: [{ type, reason }], type, reason }, status });
  const base = await startReceiver((req) => {
    if (opts.authorization !== undefined && req.headers.authorization !== opts.authorization)
      return error(401, 'security_exception', 'unable to authenticate user');
    if (req.method !== 'POST' || !/^\/_bulk(\?|$)/.test(req.url))
      return error(404, 'resource_not_found_exception', `no handler for ${req.method} ${req.url}`);
    const ct = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (ct !== 'application/x-ndjson' && ct !== 'application/json')
      return error(406, 'media_type_header_exception', `Content-Type header [${ct}] is not supported`);
    const text = req.body.toString('utf8');
    if (!text.endsWith('\n'))
      return error(
        400,
        'illegal_argument_exception',
        'The bulk request must be terminated by a newline [\\n]',
      );
    const lines = text.slice(0, -1).split('\n');
    if (lines.length % 2 !== 0)
      return error(400, 'illegal_argument_exception', 'action line without a document');
    const pairs: { action: string; index: string; doc: LogEvent }[] = [];
    for (let i = 0; i < lines.length; i += 2) {
      let action: unknown;
      let doc: unknown;
      try {
        action = JSON.parse(lines[i]!);
        doc = JSON.parse(lines[i + 1]!);
      } catch {
        return error(400, 'x_content_parse_exception', `malformed line ${i + 1}`);
      }
      const keys = action && typeof action === 'object' ? Object.keys(action) : [];
      const name = keys[0];
      const meta = name === undefined ? undefined : (action as Record<string, { _index?: unknown }>)[name];
      if (keys.length !== 1 || !ES_ACTIONS.has(name!) || typeof meta?._index !== 'string')
        return error(400, 'illegal_argument_exception', `Malformed action/metadata line [${i + 1}]`);
      if (!doc || typeof doc !== 'object' || Array.isArray(doc))
        return error(400, 'mapper_parsing_exception', 'failed to parse: not an object');
      pairs.push({ action: name!, index: meta._index, doc: doc as LogEvent });
    }
    let errors = false;
    const items = pairs.map((p, position) => {
      const fail = failItems?.(p.doc, position);
      if (fail !== undefined) {
        errors = true;
        return {
          [p.action]: {
            _index: p.index,
            status: fail.status,
            error: { type: fail.type, reason: fail.reason },
          },
        };
      }
      documents.push(p);
      return { [p.action]: { _index: p.index, _id: `doc-${++ids}`, status: 201, result: 'created' } };
    });
    return json(200, { took: 1, errors, items });
  });
  return Object.assign(base, {
    documents,
    failItems: (fn: typeof failItems) => {
      failItems = fn;
    },
  });
}

// --- Loki -----------------------------------------------------------------------------------

export interface LokiEntry {
  labels: Record<string, string>;
  ts: bigint;
  line: string;
}

export interface LokiReceiver extends Receiver {
  /** Entries accepted, in arrival order. */
  entries: LokiEntry[];
  /** Accepted entries per stream (key: the labels in Loki's `{a="1", b="2"}` form, sorted). */
  streams: Map<string, LokiEntry[]>;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function lokiStreamKey(labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  return `{${names.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(', ')}}`;
}

/**
 * A Loki push endpoint (JSON): validates the documented shape and, like Loki without
 * out-of-order ingestion, refuses an entry older than the last one of its stream (the rest of the
 * push is kept and the answer is 400).
 */
export async function startLokiReceiver(): Promise<LokiReceiver> {
  const entries: LokiEntry[] = [];
  const streams = new Map<string, LokiEntry[]>();
  const base = await startReceiver((req) => {
    if (req.method !== 'POST' || req.url.split('?')[0] !== '/loki/api/v1/push')
      return { status: 404, body: '404 page not found\n' };
    const ct = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (ct !== 'application/json') return { status: 415, body: `unsupported content type ${ct}\n` };
    let push: unknown;
    try {
      push = JSON.parse(req.body.toString('utf8'));
    } catch {
      return { status: 400, body: 'loghttp.PushRequest: invalid JSON\n' };
    }
    const problem = validatePush(push);
    if (problem !== undefined) return { status: 400, body: `${problem}\n` };
    const ignored: string[] = [];
    let total = 0;
    for (const s of (push as { streams: { stream: Record<string, string>; values: [string, string][] }[] })
      .streams) {
      const key = lokiStreamKey(s.stream);
      let stored = streams.get(key);
      if (stored === undefined) streams.set(key, (stored = []));
      for (const [tsText, line] of s.values) {
        total++;
        const ts = BigInt(tsText);
        const last = stored[stored.length - 1];
        if (last !== undefined && ts < last.ts) {
          ignored.push(
            `entry with timestamp ${tsText} ignored, reason: 'entry out of order' for stream: ${key}`,
          );
          continue;
        }
        const entry = { labels: s.stream, ts, line };
        stored.push(entry);
        entries.push(entry);
      }
    }
    if (ignored.length > 0)
      return {
        status: 400,
        body: `${ignored.join(',\n')},\ntotal ignored: ${ignored.length} out of ${total}\n`,
      };
    return { status: 204 };
  });
  return Object.assign(base, { entries, streams });
}

function validatePush(push: unknown): string | undefined {
  if (!push || typeof push !== 'object' || !Array.isArray((push as { streams?: unknown }).streams))
    return 'loghttp.PushRequest: "streams" must be an array';
  for (const s of (push as { streams: unknown[] }).streams) {
    if (!s || typeof s !== 'object') return 'a stream must be an object';
    const { stream, values } = s as { stream?: unknown; values?: unknown };
    if (!stream || typeof stream !== 'object' || Array.isArray(stream))
      return '"stream" must be an object of labels';
    const names = Object.keys(stream);
    if (names.length === 0) return 'error at least one label pair is required per stream';
    for (const n of names) {
      if (!LABEL_NAME.test(n)) return `invalid label name ${JSON.stringify(n)}`;
      if (typeof (stream as Record<string, unknown>)[n] !== 'string') return `label ${n} must be a string`;
    }
    if (!Array.isArray(values)) return '"values" must be an array';
    for (const v of values) {
      if (!Array.isArray(v) || v.length < 2 || v.length > 3) return 'a value must be [timestamp, line]';
      if (typeof v[0] !== 'string' || !/^\d{1,19}$/.test(v[0]))
        return `timestamp ${JSON.stringify(v[0])} is not unix nanoseconds as a string`;
      if (typeof v[1] !== 'string') return 'a line must be a string';
    }
  }
  return undefined;
}

// --- generic --------------------------------------------------------------------------------

export interface HttpReceiver extends Receiver {
  /** Events of the requests answered 2xx, decoded from NDJSON or a JSON array. */
  events: LogEvent[];
}

/** Any-path endpoint that decodes NDJSON or JSON-array bodies and answers 200 (or as scripted). */
export async function startHttpReceiver(): Promise<HttpReceiver> {
  const events: LogEvent[] = [];
  const base = await startReceiver((req) => {
    const text = req.body.toString('utf8');
    const decoded: LogEvent[] = [];
    try {
      if (text.trimStart().startsWith('[')) decoded.push(...(JSON.parse(text) as LogEvent[]));
      else for (const line of text.split('\n')) if (line !== '') decoded.push(JSON.parse(line) as LogEvent);
    } catch {
      return { status: 400, body: 'body is neither NDJSON nor a JSON array' };
    }
    events.push(...decoded);
    return { status: 200, body: 'ok' };
  });
  // Scripted replies are answered before the handler runs: their bodies are recorded, not counted.
  return Object.assign(base, { events });
}
