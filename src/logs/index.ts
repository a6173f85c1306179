// The log capability's public surface: the `logs:` role and its schema.

export { type LogsConfig, logsSchema } from './config.js';
export { LogsModule, logsModule } from './logs-module.js';
export { logsPreflight } from './preflight.js';
