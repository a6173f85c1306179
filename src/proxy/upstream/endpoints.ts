// The endpoints of one upstream: static addresses, DNS names (A/AAAA, and SRV) resolved in the
// background and re-resolved when their records expire, and a watched file of endpoints, so a
// service that moves is followed without a restart. Each endpoint carries a weight, labels and
// the state the balancers and the outlier detector keep for it; that state survives a refresh
// that keeps the endpoint. Which endpoint a request gets is the balancer's business (balancer.ts).

import { promises as dns, type SrvRecord } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { spiffeUrisOf } from '../../identity/spiffe.js';
import type { Address } from '../../lib/address.js';
import { DirWatcher } from '../../lib/dir-watcher.js';
import { PillionError } from '../../lib/errors.js';

export interface Endpoint {
  /** IP to connect to. */
  ip: string;
  port: number;
  /** The configured host (DNS name or IP), for Host rewriting and TLS server names. */
  host: string;
  /** "ip:port", also the pool key. */
  key: string;
  /** Relative share of requests (1..1000). */
  weight: number;
  labels: Readonly<Record<string, string>>;
  /** What is known of the endpoint at run time; the same object for as long as the endpoint stays. */
  state: EndpointState;
}

/** Per-endpoint run-time state: requests in flight, the latency average, outlier detection. */
export class EndpointState {
  /** Requests in flight to the endpoint. */
  active = 0;
  /** Peak-EWMA latency in ms (0 until the first response), and when it was last updated. */
  ewma = 0;
  ewmaAt = 0;
  /** Counters for /clusters and metrics. */
  requests = 0;
  failures = 0;
  /** Outlier detection: consecutive failures by kind, and the ejection (0: not ejected). */
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  ejectedUntil = 0;
  ejections = 0;
  /** Outlier detection's failure percentage: responses and failures since the last interval. */
  windowRequests = 0;
  windowFailures = 0;
  /** Active health checks: failing (out of balancing), checks in a row that passed or failed, the last failure. */
  unhealthy = false;
  checksPassed = 0;
  checksFailed = 0;
  lastCheckFailure = '';
}

/**
 * The endpoints to balance over: those neither ejected nor failing active health checks; all of
 * them when none is left, or fewer than minHealthPercent (Envoy's panic threshold).
 */
export function usableEndpoints(all: readonly Endpoint[], minHealthPercent: number): readonly Endpoint[] {
  let out = 0;
  for (const e of all) if (e.state.ejectedUntil !== 0 || e.state.unhealthy) out++;
  if (out === 0) return all;
  const healthy = all.length - out;
  if (healthy === 0 || (healthy * 100) / all.length < minHealthPercent) return all;
  return all.filter((e) => e.state.ejectedUntil === 0 && !e.state.unhealthy);
}

/** An endpoint as configured (or listed in an endpoints file): a host or IP, a port, a weight, labels. */
export interface EndpointSpec {
  host: string;
  port: number;
  weight: number;
  labels: Record<string, string>;
}

/** Reads an endpoints file's text into specs; throws with a message saying what is wrong. */
export type EndpointsFileParser = (text: string) => EndpointSpec[];

/** How connections to an upstream are secured; absent, they are plain TCP. */
export interface EndpointTls {
  /** SNI and the name the certificate must carry; by default the endpoint's host unless it is an IP. */
  serverName?: string;
  ca?: string | Buffer;
  insecureSkipVerify: boolean;
  /** Mutual TLS with the workload certificate (see mutualTlsOptions). */
  mutual?: MutualClient;
}

/** The client side of mutual TLS: the workload certificate in use, and the server identities allowed. */
export interface MutualClient {
  /** A context with the current workload certificate and the trust bundle; renewed ones for new connections. */
  context(): tls.SecureContext;
  /** The server's certificate must carry one of these SPIFFE IDs; empty: any of the trust bundle. */
  subjectAltNames: string[];
}

/**
 * A server of a mutual-TLS upstream is verified by its SPIFFE ID, as Istio's DestinationRule
 * subjectAltNames do, not by a host name: workload certificates carry none.
 */
export function mutualTlsOptions(m: MutualClient): tls.ConnectionOptions {
  return {
    secureContext: m.context(),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      if (m.subjectAltNames.length === 0) return undefined;
      const uris = spiffeUrisOf(cert.subjectaltname);
      if (uris.some((u) => m.subjectAltNames.includes(u))) return undefined;
      return new PillionError(
        'PILLION_ERR_PROXY_UPSTREAM_IDENTITY',
        `the server is ${uris.join(', ') || 'no SPIFFE ID'}; expected ${m.subjectAltNames.join(' or ')}`,
      );
    },
  };
}

/** Opens a connection to an endpoint (over TLS when `t` is set, offering `alpn`), with Nagle off. */
export function connectEndpoint(ep: Endpoint, t: EndpointTls | undefined, alpn?: string[]): net.Socket {
  const socket = t
    ? tls.connect({
        host: ep.ip,
        port: ep.port,
        servername: t.serverName ?? (isIP(ep.host) ? undefined : ep.host),
        ALPNProtocols: alpn,
        ...(t.mutual ? mutualTlsOptions(t.mutual) : { ca: t.ca, rejectUnauthorized: !t.insecureSkipVerify }),
      })
    : net.connect({ host: ep.ip, port: ep.port });
  socket.setNoDelay(true);
  return socket;
}

interface Target {
  host: string;
  port: number;
  weight: number;
  labels: Record<string, string>;
  /** An SRV name, whose records give the hosts and ports (host and port unused then). */
  srv: boolean;
  resolved: Endpoint[];
}

const MIN_REFRESH_MS = 1000;

export type Resolver = (host: string) => Promise<{ address: string; ttl: number }[]>;
export type SrvResolver = (name: string) => Promise<SrvRecord[]>;

export interface EndpointsOptions {
  refreshMs: number;
  logger: Logger;
  resolve?: Resolver;
  resolveSrv?: SrvResolver;
  srv?: string | undefined;
  /** A watched YAML file of endpoints, read with parseFile. */
  file?: { path: string; parse: EndpointsFileParser; onError?: (err: Error) => void } | undefined;
}

export class Endpoints {
  #static: Target[];
  #srv: Target | undefined;
  #fromFile: Target[] = [];
  #all: Endpoint[] = [];
  /** State of every endpoint by key, kept while the endpoint is listed. */
  #states = new Map<string, EndpointState>();
  #listeners: (() => void)[] = [];
  #next = 0;
  #refreshMs: number;
  #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #resolve: Resolver;
  #resolveSrv: SrvResolver;
  #file: EndpointsOptions['file'];
  #fileText: string | undefined;
  #watcher: DirWatcher | undefined;
  #reading: Promise<void> | undefined;
  #readAgain = false;

  constructor(addresses: (Address & Partial<EndpointSpec>)[], opts: EndpointsOptions) {
    this.#refreshMs = opts.refreshMs;
    this.#logger = opts.logger;
    this.#resolve = opts.resolve ?? resolveHost;
    this.#resolveSrv = opts.resolveSrv ?? ((n) => dns.resolveSrv(n));
    this.#file = opts.file;
    this.#static = addresses.map((a) => this.#target(a));
    this.#srv =
      opts.srv !== undefined
        ? { host: opts.srv, port: 0, weight: 1, labels: {}, srv: true, resolved: [] }
        : undefined;
    this.#rebuild();
  }

  /** Resolves every DNS name and reads the endpoints file once; the upstream is usable when this settles. */
  async start(): Promise<void> {
    if (this.#file !== undefined) {
      await this.#readFile();
      const dir = dirname(resolvePath(this.#file.path));
      const name = basename(this.#file.path);
      this.#watcher = new DirWatcher({
        onEvent: (_d, n) => {
          if (n === null || n === name) void this.#readFile();
        },
      });
      this.#watcher.sync([dir]);
    }
    await this.#refresh();
  }

  /** Every endpoint, in a stable order (configuration, then SRV, then the file). */
  get all(): readonly Endpoint[] {
    return this.#all;
  }

  /** Called after every change of the list. */
  onChange(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /** The next endpoint, round-robin over all of them, ignoring weights; for the TCP forwarder's connects. */
  pick(): Endpoint | undefined {
    const all = this.#all;
    if (all.length === 0) return undefined;
    if (this.#next >= all.length) this.#next = 0;
    return all[this.#next++];
  }

  get size(): number {
    return this.#all.length;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#watcher?.close();
  }

  #target(a: Address & Partial<EndpointSpec>): Target {
    const host = a.host === '' ? '127.0.0.1' : a.host;
    const weight = a.weight ?? 1;
    const labels = a.labels ?? {};
    const ip = isIP(host) ? host : undefined;
    return {
      host,
      port: a.port,
      weight,
      labels,
      srv: false,
      resolved: ip ? [this.#endpoint(ip, a.port, host, weight, labels)] : [],
    };
  }

  #endpoint(
    ip: string,
    port: number,
    host: string,
    weight: number,
    labels: Record<string, string>,
  ): Endpoint {
    const key = `${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
    return { ip, port, host, key, weight, labels, state: this.#stateOf(key) };
  }

  #stateOf(key: string): EndpointState {
    let st = this.#states.get(key);
    if (st === undefined) {
      st = new EndpointState();
      this.#states.set(key, st);
    }
    return st;
  }

  async #readFile(): Promise<void> {
    if (this.#reading !== undefined) {
      // One read at a time; a change during a read reads again after it.
      this.#readAgain = true;
      return this.#reading;
    }
    const f = this.#file!;
    this.#reading = (async () => {
      do {
        this.#readAgain = false;
        try {
          const text = await readFile(f.path, 'utf8');
          if (text === this.#fileText) continue;
          const specs = f.parse(text);
          this.#fileText = text;
          this.#fromFile = specs.map((e) => this.#target(e));
          await Promise.all(this.#fromFile.map((t) => this.#resolveTarget(t)));
          this.#rebuild();
          this.#logger.info({ file: f.path, endpoints: specs.length }, 'upstream endpoints file read');
        } catch (err) {
          // Keep the last good list: a half-written or broken file must not empty the upstream.
          f.onError?.(err as Error);
          this.#logger.warn(
            { code: 'PILLION_ERR_PROXY_ENDPOINTS_FILE', file: f.path, err: (err as Error).message },
            'upstream endpoints file not applied; keeping the last good endpoints',
          );
        }
      } while (this.#readAgain && !this.#closed);
    })();
    try {
      await this.#reading;
    } finally {
      this.#reading = undefined;
    }
  }

  /** Resolves one target; returns the shortest TTL seen (ms), or Infinity. */
  async #resolveTarget(t: Target): Promise<number> {
    let minTtl = Number.POSITIVE_INFINITY;
    if (!t.srv && isIP(t.host)) return minTtl;
    try {
      if (t.srv) {
        const records = await this.#resolveSrv(t.host);
        if (records.length === 0) throw new Error('no SRV records');
        // Only the lowest priority is used; the others are fallbacks for when it is gone.
        const best = Math.min(...records.map((r) => r.priority));
        const out: Endpoint[] = [];
        for (const r of records) {
          if (r.priority !== best) continue;
          const ips = isIP(r.name) ? [{ address: r.name, ttl: 0 }] : await this.#resolve(r.name);
          for (const a of ips) {
            if (a.ttl > 0) minTtl = Math.min(minTtl, a.ttl * 1000);
            out.push(
              this.#endpoint(a.address, r.port, r.name, Math.max(1, Math.min(1000, r.weight)), t.labels),
            );
          }
        }
        t.resolved = out;
      } else {
        const records = await this.#resolve(t.host);
        if (records.length === 0) throw new Error('no addresses');
        t.resolved = records.map((r) => this.#endpoint(r.address, t.port, t.host, t.weight, t.labels));
        for (const r of records) if (r.ttl > 0) minTtl = Math.min(minTtl, r.ttl * 1000);
      }
    } catch (err) {
      // Keep the last good addresses: a DNS outage should not take a working upstream down.
      this.#logger.warn(
        { code: 'PILLION_ERR_PROXY_UPSTREAM_CONNECT', host: t.host, err: (err as Error).message },
        'upstream DNS name did not resolve; keeping the last known addresses',
      );
    }
    return minTtl;
  }

  #targets(): Target[] {
    return this.#srv ? [...this.#static, this.#srv, ...this.#fromFile] : [...this.#static, ...this.#fromFile];
  }

  async #refresh(): Promise<void> {
    const targets = this.#targets();
    const hasNames = targets.some((t) => t.srv || !isIP(t.host)) || this.#file !== undefined;
    const ttls = await Promise.all(targets.map((t) => this.#resolveTarget(t)));
    // Where the file system sends no events, the file is read again at each refresh.
    if (this.#file !== undefined && !this.#closed) await this.#readFile();
    this.#rebuild();
    if (hasNames && !this.#closed) {
      const wait = Math.max(MIN_REFRESH_MS, Math.min(this.#refreshMs, ...ttls));
      this.#timer = setTimeout(() => void this.#refresh(), wait);
      this.#timer.unref();
    }
  }

  #rebuild(): void {
    const all: Endpoint[] = [];
    const seen = new Set<string>();
    for (const t of this.#targets())
      for (const e of t.resolved) {
        // The same address listed twice is one endpoint (its first listing's weight and labels).
        if (seen.has(e.key)) continue;
        seen.add(e.key);
        all.push(e);
      }
    for (const key of this.#states.keys()) if (!seen.has(key)) this.#states.delete(key);
    this.#all = all;
    for (const fn of this.#listeners) fn();
  }
}

/** A/AAAA with TTLs; names only the system resolver knows (/etc/hosts, "localhost") fall back to lookup. */
async function resolveHost(host: string): Promise<{ address: string; ttl: number }[]> {
  const [v4, v6] = await Promise.allSettled([
    dns.resolve4(host, { ttl: true }),
    dns.resolve6(host, { ttl: true }),
  ]);
  const out = [
    ...(v4.status === 'fulfilled' ? v4.value : []),
    ...(v6.status === 'fulfilled' ? v6.value : []),
  ];
  if (out.length > 0) return out;
  const looked = await dns.lookup(host, { all: true });
  return looked.map((l) => ({ address: l.address, ttl: 0 }));
}
