// How a request picks one of an upstream's endpoints. Round robin (weighted when weights differ)
// is here and always loaded; the other policies (balancers.ts) are loaded only by an upstream
// that configures one. A balancer is told the endpoints it may use whenever they change (ejected
// ones already left out), so picking is a loop over a prepared array.

import type { Endpoint } from './endpoints.js';

export interface Balancer {
  /** The endpoints to balance over changed. */
  update(list: readonly Endpoint[]): void;
  /**
   * An endpoint for a request; `hash` is its hash key (ring-hash, maglev), '' when none; `avoid`
   * is the endpoint its previous attempt failed on, left out where there is another.
   */
  pick(hash: string, avoid: Endpoint | undefined): Endpoint | undefined;
  /** A response came from `ep` after `ms` (peak-ewma keeps an average; the others ignore it). */
  readonly observes: boolean;
  observe(ep: Endpoint, ms: number): void;
}

/** Round robin; with differing weights, nginx's smooth weighted round robin (no bursts to one endpoint). */
export class RoundRobin implements Balancer {
  readonly observes = false;
  #list: readonly Endpoint[] = [];
  #next = 0;
  #weighted = false;
  #current: number[] = [];
  #total = 0;

  update(list: readonly Endpoint[]): void {
    this.#list = list;
    this.#weighted = list.some((e) => e.weight !== list[0]!.weight);
    this.#current = list.map(() => 0);
    this.#total = list.reduce((n, e) => n + e.weight, 0);
  }

  pick(_hash: string, avoid: Endpoint | undefined): Endpoint | undefined {
    const list = this.#list;
    if (list.length === 0) return undefined;
    let e = this.#one();
    if (e === avoid && list.length > 1) e = this.#one();
    return e;
  }

  observe(): void {}

  #one(): Endpoint {
    const list = this.#list;
    if (!this.#weighted) {
      if (this.#next >= list.length) this.#next = 0;
      return list[this.#next++]!;
    }
    const cur = this.#current;
    let best = 0;
    for (let i = 0; i < list.length; i++) {
      cur[i]! += list[i]!.weight;
      if (cur[i]! > cur[best]!) best = i;
    }
    cur[best]! -= this.#total;
    return list[best]!;
  }
}
