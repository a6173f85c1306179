// The kubelet's crash-loop back-off: the first restart is immediate, later ones wait base, 2×base,
// 4×base, ... up to cap; a container that ran for resetAfter without crashing starts over.
// (Kubernetes: 10 s doubling to 5 min, reset after 10 min.)

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  resetAfterMs: number;
}

export const KUBELET_BACKOFF: BackoffOptions = { baseMs: 10_000, capMs: 300_000, resetAfterMs: 600_000 };

export class CrashLoopBackoff {
  #opts: BackoffOptions;
  #crashes = 0;

  constructor(opts: BackoffOptions = KUBELET_BACKOFF) {
    if (opts.baseMs < 0 || opts.capMs < opts.baseMs)
      throw new RangeError('back-off cap must not be less than its base');
    this.#opts = opts;
  }

  /** The delay before restarting a container that has just exited after running for ranMs. */
  next(ranMs: number): number {
    if (ranMs >= this.#opts.resetAfterMs) this.#crashes = 0;
    this.#crashes++;
    return backoffDelay(this.#crashes, this.#opts);
  }

  get crashes(): number {
    return this.#crashes;
  }
}

/** Delay before the restart that follows the n-th consecutive crash (n ≥ 1). */
export function backoffDelay(n: number, opts: BackoffOptions): number {
  if (n <= 1) return 0;
  const exp = Math.min(n - 2, 52); // beyond 2^52 the cap has long been reached
  return Math.min(opts.capMs, opts.baseMs * 2 ** exp);
}

/**
 * Retries of a delivery (a log sink's batch, a metrics push), with full jitter:
 * random() × min(maxBackoff, initialBackoff × 2^attempt), attempt counting from 0.
 */
export function retryDelay(
  attempt: number,
  retry: { initialBackoff: number; maxBackoff: number },
  random: () => number,
): number {
  const ceiling = Math.min(retry.maxBackoff, retry.initialBackoff * 2 ** Math.min(attempt, 52));
  return random() * ceiling;
}
