// `pillion sync --once -c FILE`: renders every destination of the file's `sync:` section once and
// exits 0, or exits 1 naming each source or destination that failed: the init-container pattern
// (Vault Agent's init mode), so the app's first start finds its files. `pillion run` keeps them current.

import { systemClock } from '../lib/clock.js';
import { createMetricsRegistry } from '../metrics/index.js';
import { createLogger, errorCode, HealthSignal, type LogFormat } from '../runtime/index.js';
import { loadPillionConfig } from '../roles.js';
import { renderIssues } from './print-issues.js';

export interface SyncOptions {
  config: string;
  logLevel?: string;
  logFormat?: LogFormat;
}

export async function syncCommand(opts: SyncOptions): Promise<number> {
  const env = process.env;
  const loaded = await loadPillionConfig(opts.config, env);
  if (!loaded.ok) {
    process.stderr.write(renderIssues(loaded.issues, loaded.text, process.stderr.isTTY === true));
    return 1;
  }
  const { config } = loaded;
  const logger = createLogger({
    level: opts.logLevel ?? config.runtime.log.level,
    format: opts.logFormat ?? config.runtime.log.format,
  });
  if (!config.sync) {
    logger.fatal({ code: 'PILLION_ERR_SYNC_ONCE' }, `${opts.config} has no sync section: nothing to render`);
    return 1;
  }
  const { SyncModule } = await import('../sync/sync-module.js');
  const { exec: _exec, ...sync } = config.sync;
  const module = new SyncModule(
    { ...sync, once: true },
    {
      logger,
      metrics: createMetricsRegistry(),
      clock: systemClock,
      appHealth: new HealthSignal(true),
      env,
      services: new Map(),
    },
  );
  try {
    await module.start();
    return 0;
  } catch (err) {
    logger.fatal({ code: errorCode(err) }, (err as Error).message);
    return 1;
  } finally {
    await module.stop();
  }
}
