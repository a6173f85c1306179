// The runtime capability's public surface: the process, its config, and the module contract.

export { type AppConfig, appSchema, LOG_LEVELS, type RuntimeConfig, runtimeSchema } from './config.js';
export {
  composePillionSchema,
  type ConfigExtras,
  istioResources,
  type PillionConfig,
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
export type {
  Module,
  ModuleContext,
  ModuleDefinition,
  ModuleSource,
  Readiness,
  ReloadResult,
} from './module.js';
export { type LoadedConfig, type ReloadOutcome, Runtime, type RuntimeOptions } from './runtime.js';
export { handleSignals } from './signals.js';
