// The sync role's public surface: its schema, and its module definition. The module's code (the
// engine, LiquidJS, the sources and notifiers) is imported only when a `sync:` section starts it.

import type { Module, ModuleContext, ModuleDefinition, Readiness, ReloadResult } from '../runtime/module.js';
import type { PreflightIssue } from '../lib/preflight.js';
import type { SyncConfig } from './config.js';

export { type SyncConfig, syncSchema } from './config.js';

/** The pod runner's variable naming the pod's run directory (its status.json has the containers' pids). */
export const POD_DIR_ENV = 'PILLION_POD_DIR';

/**
 * Checks of every load beyond the schema: each JSON Schema check compiles (Ajv is imported only
 * when there is one), and a notifier naming a container runs inside a pod.
 */
export async function syncLoadChecks(
  cfg: SyncConfig,
  env: Readonly<Record<string, string | undefined>>,
): Promise<PreflightIssue[]> {
  const issues: PreflightIssue[] = [];
  for (const [name, n] of Object.entries(cfg.notify))
    if (n.type === 'signal' && n.container !== undefined && !env[POD_DIR_ENV])
      issues.push({
        path: ['sync', 'notify', name, 'container'],
        code: 'PILLION_ERR_CONFIG_BAD_VALUE',
        message: `container "${n.container}" names a container of the same pod: it needs pillion to run in a pod started by \`pillion pod\` (${POD_DIR_ENV} is not set)`,
        hint: 'outside a pod, give pidFile or process instead',
      });
  const withSchema = Object.entries(cfg.destinations).filter(
    ([, d]) => d.check?.schema !== undefined || d.check?.schemaFile !== undefined,
  );
  if (withSchema.length > 0) {
    const { compileSchemaCheck } = await import('./schema-check.js');
    for (const [name, d] of withSchema) {
      const r = await compileSchemaCheck(d);
      if (typeof r !== 'function')
        issues.push({
          path: ['sync', 'destinations', name, 'check', r.key],
          code: 'PILLION_ERR_CONFIG_BAD_VALUE',
          message: r.message,
        });
    }
  }
  return issues;
}

export function syncModule(): ModuleDefinition<SyncConfig> {
  return {
    name: 'sync',
    section: (c) => c.sync,
    create: (section, ctx) => new LazySyncModule(section, ctx),
  };
}

/** Loads the role's code at start; until then it costs nothing. */
class LazySyncModule implements Module<SyncConfig> {
  readonly #section: SyncConfig;
  readonly #ctx: ModuleContext;
  #inner: (Module<SyncConfig> & { status(): unknown }) | undefined;

  constructor(section: SyncConfig, ctx: ModuleContext) {
    this.#section = section;
    this.#ctx = ctx;
  }

  async start(): Promise<void> {
    const { SyncModule } = await import('./sync-module.js');
    this.#inner = new SyncModule(this.#section, this.#ctx);
    await this.#inner.start();
  }

  reload(section: SyncConfig): Promise<ReloadResult> {
    return this.#inner ? this.#inner.reload(section) : Promise.resolve('restart-needed');
  }

  async drain(deadline: number): Promise<void> {
    await this.#inner?.drain(deadline);
  }

  async stop(): Promise<void> {
    await this.#inner?.stop();
  }

  readiness(): Readiness {
    return this.#inner?.readiness() ?? { ready: false, reason: 'sync starting' };
  }

  status(): unknown {
    return this.#inner?.status() ?? { state: 'starting' };
  }
}
