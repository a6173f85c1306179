// What a route adds to an exchange when it has retries or a timeout: the compiled retry policy
// (loaded only then, see retry.ts) and the whole-exchange timeout. Resolved per route at config
// load: the route's own settings, else those of the upstream it sends to.

import type { RetryPolicy } from './retry.js';

export interface RouteResilience {
  retry: RetryPolicy | undefined;
  /** ms; 0 none. */
  timeoutMs: number;
}
