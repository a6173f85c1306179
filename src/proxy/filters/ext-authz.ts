// The client of an external authorization service, with Envoy ext_authz's HTTP semantics: the
// request's method and path (after pathPrefix), Host and the chosen headers are sent without a
// body; a 2xx answer allows (and may add headers to the forwarded request), any other answer is
// returned to the client as it is; an error or a late answer denies with statusOnError unless
// failOpen.

import http from 'node:http';
import type { ProviderConfig } from './config.js';
import type { Denial, FilterRequest } from './types.js';

export type CheckResult =
  { allow: true; headers: [string, string][] } | { allow: false; denial: Denial; error: string | undefined };

/** Bodies of denying answers passed to the client, at most. */
const MAX_BODY = 64 * 1024;

export class ExtAuthzClient {
  readonly name: string;
  readonly #cfg: ProviderConfig;
  readonly #agent: http.Agent;
  readonly #include: string[];
  readonly #toUpstream: string[];
  readonly #toClient: string[];

  constructor(name: string, cfg: ProviderConfig) {
    this.name = name;
    this.#cfg = cfg;
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    this.#include = cfg.includeRequestHeadersInCheck.map((h) => h.toLowerCase());
    this.#toUpstream = cfg.headersToUpstreamOnAllow.map((h) => h.toLowerCase());
    this.#toClient = cfg.headersToDownstreamOnDeny.map((h) => h.toLowerCase());
  }

  check(req: FilterRequest): Promise<CheckResult> {
    const cfg = this.#cfg;
    const headers: Record<string, string> = { host: req.host };
    for (const h of this.#include) {
      const at = req.lower.indexOf(h);
      if (at !== -1 && h !== 'host' && h !== 'content-length' && h !== 'transfer-encoding')
        headers[h] = req.values[at]!;
    }
    headers['content-length'] = '0';
    return new Promise<CheckResult>((resolve) => {
      let done = false;
      const finish = (r: CheckResult) => {
        if (done) return;
        done = true;
        resolve(r);
      };
      const onError = (why: string) => {
        if (cfg.failOpen) finish({ allow: true, headers: [] });
        else
          finish({
            allow: false,
            denial: { status: cfg.statusOnError, body: 'RBAC: access denied\n', headers: [], flag: 'UAEX' },
            error: why,
          });
      };
      const r = http.request(
        {
          host: cfg.address.host || '127.0.0.1',
          port: cfg.address.port,
          method: req.method,
          path: cfg.pathPrefix + req.path + req.query,
          headers,
          agent: this.#agent,
          timeout: cfg.timeout,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            res.resume();
            const add: [string, string][] = [];
            for (const h of this.#toUpstream) {
              const v = res.headers[h];
              if (typeof v === 'string') add.push([h, v]);
              else if (Array.isArray(v)) add.push([h, v.join(', ')]);
            }
            res.on('end', () => finish({ allow: true, headers: add }));
            res.on('error', () => onError('check response failed'));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= MAX_BODY) chunks.push(c);
          });
          res.on('error', () => onError('check response failed'));
          res.on('end', () => {
            const extra: [string, string][] = [];
            for (const h of this.#toClient) {
              const v = res.headers[h];
              if (typeof v === 'string') extra.push([h, v]);
            }
            const ct = res.headers['content-type'];
            if (typeof ct === 'string') extra.push(['content-type', ct]);
            finish({
              allow: false,
              denial: {
                status: status >= 200 && status <= 599 ? status : 403,
                body: Buffer.concat(chunks).toString('latin1'),
                headers: extra,
                flag: 'UAEX',
              },
              error: undefined,
            });
          });
        },
      );
      r.on('timeout', () => {
        r.destroy();
        onError('check timed out');
      });
      r.on('error', (err: NodeJS.ErrnoException) => onError(err.code ?? err.message));
      r.end();
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
