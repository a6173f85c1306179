// The sync role's public surface: its schema, and its module definition. The module's code (the
// engine, LiquidJS, the sources and notifiers) is imported only when a `sync:` section starts it.

import type { Module, ModuleContext, ModuleDefinition, Readiness, ReloadResult } from '../runtime/module.js';
import type { SyncConfig } from './config.js';

export { type SyncConfig, syncSchema } from './config.js';

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
