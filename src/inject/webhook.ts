// The mutating admission webhook: AdmissionReview v1 in, AdmissionReview v1 out, with a JSONPatch
// from the same injector as `pillion inject`. It never fails a pod's creation by crashing or
// hanging: a request it cannot use (too large, not a Pod, malformed, bad annotations) is allowed
// unchanged with a warning the API server passes to the user, and counted by its reason.

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSecureContext } from 'node:tls';
import jsonpatch from 'fast-json-patch';
import type { Logger } from 'pino';
import { type Address, listenOn } from '../lib/address.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { DirWatcher } from '../lib/dir-watcher.js';
import { PillionError } from '../lib/errors.js';
import { RateLimitedLog } from '../lib/rate-limited-log.js';
import {
  CounterFamily,
  family,
  HistogramFamily,
  observe,
  type Registry,
  renderText,
  TEXT_CONTENT_TYPE,
} from '../metrics/index.js';
import type { InjectorConfig } from './config.js';
import { injectTemplate, type PodTemplate } from './injector.js';

export interface WebhookOptions {
  config: InjectorConfig;
  cert: string;
  key: string;
  /** Overrides config.webhook.listen (tests bind port 0). */
  listen?: Address | undefined;
  logger: Logger;
  metrics: Registry;
  clock: Clock;
}

/** Why a request was answered without a patch; the label of pillion_webhook_skips_total. */
export type WebhookSkip =
  | 'opted-out'
  | 'host-network'
  | 'not-opted-in'
  | 'excluded-namespace'
  | 'not-a-pod'
  | 'not-create'
  | 'already-injected'
  | 'invalid-annotations'
  | 'too-large'
  | 'malformed';

const DURATION_BOUNDS = [
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];
const UID = /"uid"\s*:\s*"([^"\\]{1,128})"/;

interface Review {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  namespace?: string;
  operation?: string;
  dryRun?: boolean;
  object?: Record<string, unknown>;
}

interface Answer {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

export class InjectionWebhook {
  readonly #opts: WebhookOptions;
  readonly #server: Server;
  readonly #log: RateLimitedLog;
  readonly #requests: CounterFamily;
  readonly #injections: CounterFamily;
  readonly #skips: CounterFamily;
  readonly #errors: CounterFamily;
  readonly #duration: HistogramFamily;
  #watcher: DirWatcher | undefined;
  #reloadTimer: TimerHandle | undefined;
  #draining = false;

  constructor(opts: WebhookOptions) {
    this.#opts = opts;
    this.#log = new RateLimitedLog(opts.logger, opts.clock);
    const m = opts.metrics;
    this.#requests = family(
      m,
      () =>
        new CounterFamily('pillion_webhook_requests_total', 'AdmissionReview requests answered, by outcome.'),
    );
    this.#injections = family(
      m,
      () =>
        new CounterFamily(
          'pillion_webhook_injections_total',
          'Pods patched with pillion, by dry_run (a dry run is patched too, and changes nothing).',
        ),
    );
    this.#skips = family(
      m,
      () => new CounterFamily('pillion_webhook_skips_total', 'Requests allowed without a patch, by reason.'),
    );
    this.#errors = family(
      m,
      () =>
        new CounterFamily(
          'pillion_webhook_errors_total',
          'Requests that could not be answered with an AdmissionReview (no uid to answer to), by reason.',
        ),
    );
    this.#duration = family(
      m,
      () =>
        new HistogramFamily(
          'pillion_webhook_request_duration_seconds',
          'Time from a complete request body to the answer written.',
          DURATION_BOUNDS,
        ),
    );
    const { webhook } = opts.config;
    this.#server = createServer(
      // Timeouts are checked this often: a body that stalls is cut off soon after readTimeout.
      {
        ...this.#tlsOptions(),
        connectionsCheckingInterval: Math.min(1000, Math.max(50, webhook.readTimeout / 4)),
      },
      (req, res) => this.#handle(req, res),
    );
    // A body that does not arrive in time is cut off before the API server's own timeout runs out.
    this.#server.requestTimeout = webhook.readTimeout;
    this.#server.headersTimeout = Math.min(webhook.readTimeout, 60_000);
    this.#server.keepAliveTimeout = 30_000;
  }

  async start(): Promise<void> {
    const listen = this.#opts.listen ?? this.#opts.config.webhook.listen;
    await listenOn(this.#server, listen, 'PILLION_ERR_ADMIN_LISTEN', 'webhook');
    this.#watchCertificates();
  }

  address(): Address {
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /**
   * Stops taking connections, lets requests in flight finish within the grace period, then closes
   * what is left. /healthz answers 503 meanwhile, so the Service stops sending here.
   */
  async stop(): Promise<void> {
    this.#draining = true;
    this.#watcher?.close();
    this.#reloadTimer?.cancel();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const grace = this.#opts.clock.setTimeout(
      () => this.#server.closeAllConnections(),
      this.#opts.config.webhook.shutdownGrace,
    );
    await closed;
    grace.cancel();
  }

  #tlsOptions(): { cert: Buffer; key: Buffer } {
    try {
      const cert = readFileSync(this.#opts.cert);
      const key = readFileSync(this.#opts.key);
      createSecureContext({ cert, key }); // a mismatched pair fails here, not at the first handshake
      return { cert, key };
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_WEBHOOK_TLS',
        `cannot use ${this.#opts.cert} and ${this.#opts.key}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** Certificates renewed on disk (cert-manager, a Secret's volume) are used for the next handshakes. */
  #watchCertificates(): void {
    this.#watcher = new DirWatcher({
      onEvent: () => {
        // A Secret volume swaps a symlink: wait for the writes to settle, then read both files.
        this.#reloadTimer?.cancel();
        this.#reloadTimer = this.#opts.clock.setTimeout(() => this.reloadCertificates(), 200);
      },
    });
    this.#watcher.sync(new Set([dirname(this.#opts.cert), dirname(this.#opts.key)]));
  }

  /** Reads the certificate and key again; a pair that does not work leaves the current one in use. */
  reloadCertificates(): boolean {
    try {
      this.#server.setSecureContext(this.#tlsOptions());
    } catch (err) {
      this.#log.log(
        'warn',
        'cert',
        { code: (err as PillionError).code },
        `${(err as Error).message}; the current certificate stays in use`,
      );
      return false;
    }
    this.#opts.logger.info({ cert: this.#opts.cert }, 'webhook certificate reloaded');
    return true;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/healthz')
      return text(res, this.#draining ? 503 : 200, this.#draining ? 'draining\n' : 'ok\n');
    if (req.method === 'GET' && path === '/metrics') {
      void this.#opts.metrics.getMetricsAsJSON().then((families) => {
        res.writeHead(200, { 'content-type': TEXT_CONTENT_TYPE });
        res.end(renderText(families));
      });
      return;
    }
    if (path !== '/inject')
      return text(res, 404, 'not found: POST AdmissionReviews to /inject; GET /healthz, /metrics\n');
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return text(res, 405, 'POST an AdmissionReview\n');
    }
    const limit = this.#opts.config.webhook.maxRequestBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    let kept = 0;
    // Past the limit the rest is read and dropped; the start (where the uid is) is kept to answer.
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit || kept < 65_536) {
        chunks.push(chunk);
        kept += chunk.length;
      }
    });
    req.on('end', () => {
      const started = performance.now();
      const body = Buffer.concat(chunks);
      const answer = size > limit ? this.#tooLarge(body, size, limit) : this.#review(body);
      if (answer === undefined) {
        this.#errors.with({ reason: 'no-uid' }).value++;
        this.#requests.with({ outcome: 'error' }).value++;
        return text(res, 400, 'not an AdmissionReview with a request.uid\n');
      }
      const out = JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: answer,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
      observe(this.#duration.with({}), DURATION_BOUNDS, (performance.now() - started) / 1000);
    });
    req.on('error', () => {
      this.#errors.with({ reason: 'read' }).value++;
    });
  }

  #skip(uid: string, reason: WebhookSkip, warning?: string): Answer {
    this.#skips.with({ reason }).value++;
    this.#requests.with({ outcome: 'skipped' }).value++;
    if (warning === undefined) {
      // A decision, not a problem (an opted-out pod): counted, and logged once a minute per reason.
      this.#log.log('info', reason, { uid, reason }, `not injected: ${reason}`);
      return { uid, allowed: true };
    }
    this.#log.log('warn', reason, { uid, reason }, warning);
    return { uid, allowed: true, warnings: [`pillion: ${warning}`] };
  }

  #tooLarge(prefix: Buffer, size: number, limit: number): Answer | undefined {
    const uid = UID.exec(prefix.subarray(0, 65_536).toString('utf8'))?.[1];
    if (uid === undefined) return undefined;
    return this.#skip(
      uid,
      'too-large',
      `not injected: the request is ${size} bytes, over webhook.maxRequestBytes (${limit})`,
    );
  }

  #review(body: Buffer): Answer | undefined {
    let review: { apiVersion?: unknown; kind?: unknown; request?: Review };
    try {
      review = JSON.parse(body.toString('utf8')) as typeof review;
    } catch {
      const uid = UID.exec(body.subarray(0, 65_536).toString('utf8'))?.[1];
      return uid === undefined
        ? undefined
        : this.#skip(uid, 'malformed', 'not injected: the AdmissionReview is not valid JSON');
    }
    const request = review?.request;
    if (typeof request?.uid !== 'string' || request.uid === '') return undefined;
    const uid = request.uid;
    if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview')
      return this.#skip(
        uid,
        'malformed',
        `not injected: expected an admission.k8s.io/v1 AdmissionReview, got ${String(review.apiVersion)} ${String(review.kind)}`,
      );
    const pod = request.object;
    if (
      request.kind?.kind !== 'Pod' ||
      (request.kind.group ?? '') !== '' ||
      typeof pod !== 'object' ||
      pod === null
    )
      return this.#skip(
        uid,
        'not-a-pod',
        `not injected: pillion injects Pods, not ${request.kind?.kind ?? 'this request'}`,
      );
    if (request.operation !== undefined && request.operation !== 'CREATE')
      return this.#skip(uid, 'not-create');
    const spec = pod.spec as PodTemplate['spec'] | undefined;
    if (typeof spec !== 'object' || spec === null || !Array.isArray(spec.containers))
      return this.#skip(uid, 'malformed', 'not injected: the Pod has no spec.containers');
    const metadata = (pod.metadata ?? {}) as PodTemplate['metadata'] & {
      ownerReferences?: { kind?: string }[];
    };
    const owner = metadata?.ownerReferences?.find((o) => o.kind === 'Job') ? 'Job' : 'Pod';
    const outcome = injectTemplate({ metadata, spec }, this.#opts.config, {
      kind: owner,
      namespace: request.namespace,
    });
    if (outcome.status === 'skipped') return this.#skip(uid, outcome.reason);
    if (outcome.status === 'invalid')
      return this.#skip(
        uid,
        'invalid-annotations',
        `not injected: ${outcome.problems.map((p) => `${p.key}: ${p.message}${p.hint ? ` (${p.hint})` : ''}`).join('; ')}`,
      );
    if (!outcome.changed) return this.#skip(uid, 'already-injected');
    const patched = { ...pod, metadata: outcome.template.metadata, spec: outcome.template.spec };
    const patch = jsonpatch.compare(pod, patched);
    this.#injections.with({ dry_run: request.dryRun === true ? 'true' : 'false' }).value++;
    this.#requests.with({ outcome: 'injected' }).value++;
    return {
      uid,
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    };
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(body);
}
