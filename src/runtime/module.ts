// The module contract (see DESIGN.md): every role (inbound, outbound, logs, metrics, sync, and the
// app health check) is started, reloaded, drained and stopped by the runtime through this shape.
// Modules never own signals and never exit the process.

import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import type { Registry } from '../metrics/index.js';
import type { PillionConfig } from './config-schema.js';
import type { HealthSignal } from './health-signal.js';

export type ReloadResult = 'applied' | 'restart-needed';

export interface Readiness {
  ready: boolean;
  /** Why not ready, for /readyz; while ready, what is degraded but not (yet) failing readiness. */
  reason?: string;
}

export interface Module<S = unknown> {
  /** Starts serving; resolves once the module is up (ports bound). Rejects if it cannot start. */
  start(): Promise<void>;
  /** Applies a changed section in place if it can; otherwise says the module must be restarted. */
  reload(section: S): Promise<ReloadResult>;
  /** Stops taking new work and finishes in-flight work, until deadline (clock time in ms). */
  drain(deadline: number): Promise<void>;
  /** Releases everything; after drain, or at once. */
  stop(): Promise<void>;
  readiness(): Readiness;
  /** What the admin API shows of the module (`GET /identity`, `GET /sync`), if anything; never a secret. */
  status?(): unknown;
  /** What the module shows in the admin API's GET /policies (the inbound proxy: its request filters). */
  policies?(): unknown;
  /** The upstreams of a proxy module, their endpoints and counters: GET /clusters. */
  clusters?(): unknown[];
}

/** The shared services a module may use; everything else comes from its own section. */
export interface ModuleContext {
  logger: Logger;
  metrics: Registry;
  clock: Clock;
  /** Whether the app is healthy (always healthy when no app section is configured). */
  appHealth: HealthSignal;
  /** The process environment (downward API values, state directories); only the CLI reads process.env. */
  env: Readonly<Record<string, string | undefined>>;
  /**
   * What modules of one runtime share, by a key the providing capability owns (the identity hub
   * the proxy's mutual TLS reads). Lives as long as the runtime, across module restarts.
   */
  services: Map<string, unknown>;
}

export interface ModuleDefinition<S = unknown> {
  readonly name: string;
  /** The module's section of the config, or undefined when the module is not enabled. */
  section(config: PillionConfig): S | undefined;
  create(section: S, ctx: ModuleContext): Module<S>;
}

/**
 * A module known by name only until its section appears in the config: then load() imports its
 * code (src/roles.ts). The name is the module's section of pillion.yaml.
 */
export interface ModuleSource {
  readonly name: string;
  load(): Promise<ModuleDefinition<unknown>>;
}
