// The pod's events, as the kubelet records them for `kubectl describe`: Started, Killing,
// Unhealthy, BackOff, Failed, Completed, ... An event that repeats (a probe failing every period)
// is counted with its first and last time instead of being stored again, as the API server's event
// series do, and the list is bounded so a pod that crash-loops for a week does not grow its status.

import type { Clock } from '../lib/clock.js';
import type { PodEvent } from './state.js';

/** Distinct events kept; the oldest (by last occurrence) go first. */
export const MAX_EVENTS = 100;

export class PodEvents {
  #clock: Clock;
  #byKey = new Map<string, PodEvent>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  normal(reason: string, message: string, container?: string): void {
    this.#add('Normal', reason, message, container);
  }

  warning(reason: string, message: string, container?: string): void {
    this.#add('Warning', reason, message, container);
  }

  /** Oldest first, by when each last happened. */
  list(): PodEvent[] {
    return [...this.#byKey.values()].map((e) => ({ ...e }));
  }

  #add(type: PodEvent['type'], reason: string, message: string, container: string | undefined): void {
    const at = new Date(this.#clock.now()).toISOString();
    const key = `${type}\0${reason}\0${container ?? ''}\0${message}`;
    const seen = this.#byKey.get(key);
    if (seen) {
      seen.count++;
      seen.lastTimestamp = at;
      this.#byKey.delete(key); // re-inserted below: the map's order is the order of last occurrence
      this.#byKey.set(key, seen);
      return;
    }
    this.#byKey.set(key, {
      type,
      reason,
      container,
      message,
      count: 1,
      firstTimestamp: at,
      lastTimestamp: at,
    });
    if (this.#byKey.size > MAX_EVENTS) this.#byKey.delete(this.#byKey.keys().next().value!);
  }
}
