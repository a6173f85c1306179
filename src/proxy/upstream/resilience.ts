// What a route adds to an exchange when it has retries or a timeout: the compiled retry policy
// (loaded only then, see retry.ts) and the whole-exchange timeout. Resolved per route at config
// load: the route's own settings, else those of the upstream it sends to.

import type { RetryPolicy } from './retry.js';

export interface RouteResilience {
  retry: RetryPolicy | undefined;
  /** ms; 0 none. */
  timeoutMs: number;
}

/** Why a try failed, as both engines tell the retry policy (see RetryPolicy.onFailure). */
export const F_CONNECT = 1;
export const F_RESET = 2;
export const F_TIMEOUT = 3;
/** A response the route retries on (RetryPolicy.onResponse said so). */
export const F_RESPONSE = 4;
/** HTTP/2: the upstream refused the stream (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream). */
export const F_REFUSED = 5;
