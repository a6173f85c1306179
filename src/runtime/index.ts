// The runtime capability's public surface: the process, its config, and the module contract.

export { AppHealthModule, appModule } from './app-health.js';
export { type Probe, type ProbeResult, type ProbeTarget, probeApp } from './app-probe.js';
export { type AppConfig, appSchema, LOG_LEVELS, type RuntimeConfig, runtimeSchema } from './config.js';
export {
  loadPillionConfig,
  type PillionConfig,
  parsePillionConfig,
  pillionConfigDocs,
  pillionJsonSchema,
  pillionSchema,
  withIstio,
} from './config-schema.js';
export { ConfigWatcher } from './config-watcher.js';
export { HealthSignal } from './health-signal.js';
export {
  createLogger,
  errorCode,
  isOperationalError,
  type LogFormat,
  type Logger,
  operationalErrorAsReason,
} from './logger.js';
export type { Module, ModuleContext, ModuleDefinition, Readiness, ReloadResult } from './module.js';
export { builtinModules } from './modules.js';
export { type LoadedConfig, type ReloadOutcome, Runtime, type RuntimeOptions } from './runtime.js';
export { handleSignals } from './signals.js';
