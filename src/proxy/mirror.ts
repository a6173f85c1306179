// Request mirroring (Istio's mirror and mirrorPercentage), loaded only where a route mirrors: a
// copy of a request goes to another upstream, fire and forget, its response read and dropped and
// its failures counted, never seen by the client. Bounded: at most MAX_IN_FLIGHT copies at once.
// A request with a body is not copied (the body streams to the real upstream and is not kept);
// that is counted too.

import http from 'node:http';
import type { CounterFamily } from '../metrics/index.js';
import type { Upstream } from './upstream/upstream.js';

const MAX_IN_FLIGHT = 64;
const TIMEOUT_MS = 10_000;

export type MirrorOutcome = 'sent' | 'failed' | 'skipped_body' | 'overflow';

export class Mirror {
  readonly #upstreams: Map<string, Upstream>;
  readonly #counts: CounterFamily;
  readonly #section: string;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  #inFlight = 0;

  constructor(upstreams: Map<string, Upstream>, counts: CounterFamily, section: string) {
    this.#upstreams = upstreams;
    this.#counts = counts;
    this.#section = section;
  }

  /**
   * Sends a copy of a request to `upstream`; `lower`/`values` are its headers (lower-case names).
   * The client's Host gets "-shadow" appended, as Envoy and Istio do, so the mirror can tell
   * copies apart.
   */
  send(
    upstream: string,
    method: string,
    path: string,
    host: string,
    lower: string[],
    values: string[],
    hasBody: boolean,
  ): void {
    if (hasBody) return this.#count(upstream, 'skipped_body');
    if (this.#inFlight >= MAX_IN_FLIGHT) return this.#count(upstream, 'overflow');
    const u = this.#upstreams.get(upstream);
    const ep = u?.closed === false ? u.pick('', undefined) : undefined;
    if (ep === undefined) return this.#count(upstream, 'failed');
    const headers: Record<string, string> = {};
    for (let i = 0; i < lower.length; i++) {
      const n = lower[i]!;
      if (
        n === 'host' ||
        n === 'connection' ||
        n === 'keep-alive' ||
        n === 'upgrade' ||
        n === 'content-length' ||
        n === 'transfer-encoding'
      )
        continue;
      headers[n] = headers[n] === undefined ? values[i]! : `${headers[n]}, ${values[i]!}`;
    }
    headers.host = `${host || u!.hostHeader || ep.host}-shadow`;
    this.#inFlight++;
    let done = false;
    const finish = (outcome: MirrorOutcome) => {
      if (done) return;
      done = true;
      this.#inFlight--;
      this.#count(upstream, outcome);
    };
    const req = http.request(
      { host: ep.ip, port: ep.port, method, path, headers, agent: this.#agent, timeout: TIMEOUT_MS },
      (res) => {
        res.resume();
        res.on('end', () => finish('sent'));
        res.on('error', () => finish('failed'));
      },
    );
    req.on('timeout', () => req.destroy(new Error('mirror timeout')));
    req.on('error', () => finish('failed'));
    req.end();
  }

  close(): void {
    this.#agent.destroy();
  }

  #count(upstream: string, outcome: MirrorOutcome): void {
    this.#counts.with({ section: this.#section, upstream, outcome }).value++;
  }
}
