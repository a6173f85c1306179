// The log levels of runtime.log.level and --log-level: a file of its own so the CLI can offer
// them without loading the runtime.

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
