// The API adapter's public surface: each route's transformation built at config load, and the
// load check that places an expression's syntax error at its line:col. The proxy imports this
// file only when a route has a `transform`, so jsonata and fast-xml-parser cost nothing otherwise.

import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import { LogLimiter } from '../../lib/log-limiter.js';
import type { PreflightIssue } from '../../lib/preflight.js';
import { CounterFamily, family, type Registry } from '../../metrics/index.js';
import type { TransformConfig } from './config.js';
import { compileExpression, ExpressionError, RouteTransform } from './route-transform.js';

export {
  queryObject,
  fieldsObject,
  RouteTransform,
  type Fields,
  type RequestView,
  type TransformFailure,
  type TransformedRequest,
  type TransformedResponse,
} from './route-transform.js';

export interface TransformBuildDeps {
  section: string;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
}

/** Each route's transformation by route index (undefined for routes without one). */
export function buildTransforms(
  routes: readonly { name: string; transform: TransformConfig | undefined }[],
  deps: TransformBuildDeps,
): (RouteTransform | undefined)[] {
  const counter = family(
    deps.metrics,
    () =>
      new CounterFamily(
        'pillion_proxy_transforms_total',
        'Bodies through a route’s transform, by section, route, side (request, response) and result (ok, too_large, bad_body, expression_error, bad_result).',
      ),
  );
  const limiter = new LogLimiter(deps.clock);
  return routes.map((r) =>
    r.transform === undefined
      ? undefined
      : new RouteTransform(r.name, r.transform, {
          logger: deps.logger,
          limiter,
          count: (side, result) => counter.with({ section: deps.section, route: r.name, side, result }),
        }),
  );
}

/** Every expression of the section's routes compiles; a syntax error is placed at its key. */
export function transformLoadChecks(
  section: string,
  routes: readonly { transform?: TransformConfig | undefined }[],
): PreflightIssue[] {
  const issues: PreflightIssue[] = [];
  routes.forEach((r, i) => {
    for (const which of ['request', 'response'] as const) {
      const source = r.transform?.[which]?.body;
      if (source === undefined) continue;
      try {
        compileExpression(source);
      } catch (err) {
        const e = err as ExpressionError;
        issues.push({
          path: [section, 'routes', i, 'transform', which, 'body'],
          code: 'PILLION_ERR_CONFIG_BAD_VALUE',
          message: `the JSONata expression does not parse: ${e.message}${e.position !== undefined ? ` (at character ${e.position} of the expression)` : ''}`,
          hint: 'JSONata syntax: https://docs.jsonata.org/overview',
        });
      }
    }
  });
  return issues;
}
