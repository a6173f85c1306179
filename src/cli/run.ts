// `pillion run [-c FILE]`: runs the sidecar until SIGTERM/SIGINT or POST /quitquitquit. Without a
// file (and without PILLION_CONFIG) it runs on embedded defaults: the admin server alone.

import { AdminServer } from '../admin/index.js';
import type { LoadResult } from '../config/index.js';
import { formatAddress, parseAddress } from '../lib/address.js';
import { loadPillionConfig, parsePillionConfig, pillionJsonSchemaOf, roleModules } from '../roles.js';
import {
  createLogger,
  errorCode,
  handleSignals,
  isOperationalError,
  type LogFormat,
  type PillionConfig,
  Runtime,
} from '../runtime/index.js';
import { renderIssues } from './print-issues.js';
import { VERSION } from './version.js';

export interface RunOptions {
  config?: string;
  /** Istio resource files given with --istio. */
  istio?: string[];
  logLevel?: string;
  logFormat?: LogFormat;
  /**
   * Address of a listener serving only /healthz and /readyz, opened once every module has
   * started: what the kubelet probes on the pod's address (the admin API stays on loopback).
   */
  probeListen?: string;
}

export async function runCommand(opts: RunOptions): Promise<number> {
  const env = process.env;
  const probeListen = opts.probeListen === undefined ? undefined : parseAddress(opts.probeListen);
  if (probeListen && !probeListen.ok) {
    process.stderr.write(
      `pillion run: PILLION_ERR_CLI_BAD_OPTION: --probe-listen "${opts.probeListen}": ${probeListen.reason}\n`,
    );
    return 1;
  }
  const file = opts.config ?? env.PILLION_CONFIG;
  const extras = { istio: opts.istio ?? [] };
  const loaded: LoadResult<PillionConfig> = file
    ? await loadPillionConfig(file, env, extras)
    : await parsePillionConfig('', '(embedded defaults)', env, extras);
  if (!loaded.ok) {
    process.stderr.write(renderIssues(loaded.issues, loaded.text, process.stderr.isTTY === true, file));
    return 1;
  }
  const { config } = loaded;
  const logger = createLogger({
    level: opts.logLevel ?? config.runtime.log.level,
    format: opts.logFormat ?? config.runtime.log.format,
  });
  const runtime = new Runtime({
    initial: { config, raw: loaded.raw, text: loaded.text },
    configFile: file,
    configExtras: extras,
    env,
    logger,
    modules: roleModules(),
    loadConfig: loadPillionConfig,
    jsonSchema: pillionJsonSchemaOf,
    version: VERSION,
    logLevelOverride: opts.logLevel,
  });
  const exit = (code: number) => {
    logger.flush();
    process.exit(code);
  };
  const unhandle = handleSignals(runtime, { logger, exit });
  try {
    await runtime.start();
  } catch (err) {
    // An operational error (a port in use) is one line; a bug, or debug level, gets the stack too.
    const code = errorCode(err);
    if (isOperationalError(err) && !logger.isLevelEnabled('debug')) logger.fatal({ code }, err.message);
    else logger.fatal({ err, code }, `pillion could not start: ${(err as Error).message}`);
    unhandle();
    return 1;
  }
  let probes: AdminServer | undefined;
  if (probeListen) {
    probes = new AdminServer(probeListen.value, probeHandlers(runtime), { probesOnly: true });
    try {
      await probes.start();
      logger.info({ probes: formatAddress(probes.address()!) }, 'probe listener listening');
    } catch (err) {
      logger.fatal({ code: errorCode(err) }, (err as Error).message);
      await runtime.shutdown('probe listener failed');
      await runtime.done;
      unhandle();
      return 1;
    }
  }
  await runtime.done;
  await probes?.stop();
  unhandle();
  return runtime.stoppedCleanly ? 0 : 1;
}

/** The probe listener answers /healthz and /readyz only; the other handlers are never called. */
function probeHandlers(runtime: Runtime): ConstructorParameters<typeof AdminServer>[1] {
  const none = () => {
    throw new Error('not served by the probe listener');
  };
  return {
    readiness: () => runtime.readiness(),
    metrics: none,
    config: none,
    status: none,
    policies: none,
    clusters: none,
    reload: none,
    quit: none,
  };
}
