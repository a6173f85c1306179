// Schemas of the `runtime:` section (the process itself) and the `app:` section (the application
// this sidecar runs beside, and how to tell that it is healthy).

import { z } from 'zod';
import { duration, httpPath, port } from '../config/index.js';

import { LOG_LEVELS } from './log-levels.js';

export { LOG_LEVELS };

export const runtimeSchema = z
  .strictObject({
    drainTimeout: duration({ max: '1h' })
      .prefault('20s')
      .describe(
        "On SIGTERM, SIGINT or POST /quitquitquit: how long modules may finish in-flight work before they are stopped. The default fits inside Kubernetes' 30 s grace period with time left for the app.",
      ),
    stopTimeout: duration({ min: '10ms', max: '5m' })
      .prefault('5s')
      .describe(
        'After the drain: how long modules may take to stop (close sockets, flush files) before the process exits anyway, with exit code 1.',
      ),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info').describe("Level of the process's own logs."),
        format: z
          .enum(['auto', 'json', 'pretty'])
          .default('auto')
          .describe(
            'json: one JSON object per line; pretty: human-readable; auto: pretty when stdout is a terminal, else json.',
          ),
      })
      .prefault({})
      .describe("The process's own logs (not the app's: those are the logs role)."),
  })
  .prefault({})
  .describe('The Pillion process itself: shutdown and its own logs.');

export const appSchema = z
  .strictObject({
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('Host the app listens on, as seen from the sidecar.'),
    port: port().describe('Port the app listens on. Required.'),
    health: z
      .strictObject({
        protocol: z
          .enum(['http', 'tcp'])
          .default('http')
          .describe('http: GET path and expect a 2xx or 3xx status; tcp: the port accepts a connection.'),
        path: httpPath().default('/').describe('Path of the HTTP health check.'),
        interval: duration({ min: '100ms', max: '1h' }).prefault('5s').describe('Time between checks.'),
        timeout: duration({ min: '10ms', max: '1m' })
          .prefault('1s')
          .describe('A check that takes longer fails.'),
        healthyThreshold: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(1)
          .describe('Consecutive passes that make the app healthy.'),
        unhealthyThreshold: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(3)
          .describe('Consecutive failures that make the app unhealthy.'),
      })
      .prefault({})
      .describe(
        'How the sidecar checks that the app is healthy. Readiness (/readyz) and inbound traffic wait for it.',
      ),
  })
  .describe('The application this sidecar runs beside. Leave it out when there is none.');

export type RuntimeConfig = z.output<typeof runtimeSchema>;
export type AppConfig = z.output<typeof appSchema>;
