// `pillion webhook --cert --key [--config]`: the mutating admission webhook that injects pillion
// into the pods the API server sends it. SIGTERM/SIGINT stop it gracefully.

import { loadConfigFile } from '../config/index.js';
import { parseAddress } from '../lib/address.js';
import { systemClock } from '../lib/clock.js';
import { defaultInjectorConfig, type InjectorConfig, injectorSchema } from '../inject/index.js';
import { createMetricsRegistry } from '../metrics/index.js';
import { createLogger, errorCode, type LogFormat } from '../runtime/index.js';
import { renderIssues } from './print-issues.js';

export interface WebhookCommandOptions {
  cert: string;
  key: string;
  config?: string;
  listen?: string;
  logLevel?: string;
  logFormat?: LogFormat;
}

export async function webhookCommand(opts: WebhookCommandOptions): Promise<number> {
  let config: InjectorConfig = defaultInjectorConfig();
  if (opts.config) {
    const loaded = await loadConfigFile(opts.config, { schema: injectorSchema, env: process.env });
    if (!loaded.ok) {
      process.stderr.write(
        renderIssues(loaded.issues, loaded.text, process.stderr.isTTY === true, opts.config),
      );
      return 1;
    }
    config = loaded.config;
  }
  const listen = opts.listen === undefined ? undefined : parseAddress(opts.listen);
  if (listen && !listen.ok) {
    process.stderr.write(
      `pillion webhook: PILLION_ERR_CLI_BAD_OPTION: --listen "${opts.listen}": ${listen.reason}\n`,
    );
    return 1;
  }
  const logger = createLogger({ level: opts.logLevel ?? 'info', format: opts.logFormat ?? 'auto' });
  const { InjectionWebhook } = await import('../inject/webhook.js');
  let webhook: InstanceType<typeof InjectionWebhook>;
  try {
    webhook = new InjectionWebhook({
      config,
      cert: opts.cert,
      key: opts.key,
      listen: listen?.value,
      logger,
      metrics: createMetricsRegistry(),
      clock: systemClock,
    });
    await webhook.start();
  } catch (err) {
    logger.fatal({ code: errorCode(err) }, (err as Error).message);
    return 1;
  }
  logger.info({ listen: `${webhook.address().host}:${webhook.address().port}` }, 'webhook listening');
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'webhook stopping: finishing the requests in flight');
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void webhook.stop().then(resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  logger.info('webhook stopped');
  logger.flush();
  return 0;
}
