// The load-balancing policies beyond round robin, loaded only by an upstream that configures one:
// weighted random, least request (power of two choices), ring hash and Maglev (consistent hashing
// on a header, cookie or the client address) and peak-EWMA (Linkerd's latency-aware balancer).
// Randomness and time are injected, so tests replay exact sequences.

import type { LoadBalancerConfig } from '../config.js';
import type { Balancer } from './balancer.js';
import type { Endpoint } from './endpoints.js';

export interface BalancerDeps {
  random: () => number;
  now: () => number;
}

export function createBalancer(cfg: LoadBalancerConfig, deps: BalancerDeps): Balancer {
  switch (cfg.policy) {
    case 'random':
      return new WeightedRandom(deps.random);
    case 'least-request':
      return new LeastRequest(deps.random);
    case 'ring-hash':
      return new RingHash(cfg.virtualNodes, deps.random);
    case 'maglev':
      return new Maglev(deps.random);
    case 'peak-ewma':
      return new PeakEwma(deps, cfg.decay);
    default:
      throw new Error(`no balancer ${cfg.policy} here`);
  }
}

/** Draws endpoints at random in proportion to their weights (a cumulative table and a binary search). */
class WeightedRandom implements Balancer {
  readonly observes: boolean = false;
  protected list: readonly Endpoint[] = [];
  #cumulative: number[] = [];
  #total = 0;
  #uniform = true;
  protected random: () => number;

  constructor(random: () => number) {
    this.random = random;
  }

  update(list: readonly Endpoint[]): void {
    this.list = list;
    let sum = 0;
    this.#cumulative = list.map((e) => (sum += e.weight));
    this.#total = sum;
    this.#uniform = list.every((e) => e.weight === list[0]!.weight);
  }

  pick(_hash: string, avoid: Endpoint | undefined): Endpoint | undefined {
    if (this.list.length === 0) return undefined;
    let e = this.draw();
    if (e === avoid && this.list.length > 1) e = this.draw();
    return e;
  }

  observe(_ep: Endpoint, _ms: number): void {}

  protected draw(): Endpoint {
    const list = this.list;
    if (this.#uniform) return list[Math.floor(this.random() * list.length)]!;
    const x = this.random() * this.#total;
    const c = this.#cumulative;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return list[lo]!;
  }

  /** Two different endpoints drawn by weight (the same one when there is one). */
  protected drawTwo(avoid: Endpoint | undefined): [Endpoint, Endpoint] {
    const list = this.list;
    const a = this.draw();
    let b = this.draw();
    if (b === a && list.length > 1) {
      // Drawn twice: the second is one of the others, uniformly.
      const n = list.length;
      b = list[(list.indexOf(a) + 1 + Math.floor(this.random() * (n - 1))) % n]!;
    }
    if (avoid !== undefined && this.list.length > 2) {
      if (a === avoid) return [b, b];
      if (b === avoid) return [a, a];
    }
    return [a, b];
  }
}

/** Of two endpoints drawn at random, the one with fewer requests in flight (Envoy's default least request). */
class LeastRequest extends WeightedRandom {
  override pick(_hash: string, avoid: Endpoint | undefined): Endpoint | undefined {
    if (this.list.length === 0) return undefined;
    if (this.list.length === 1) return this.list[0];
    const [a, b] = this.drawTwo(avoid);
    if (avoid !== undefined && a === avoid && b !== avoid) return b;
    if (avoid !== undefined && b === avoid && a !== avoid) return a;
    return b.state.active < a.state.active ? b : a;
  }
}

/**
 * Peak-EWMA: the cost of an endpoint is its latency average times its requests in flight plus one;
 * of two drawn at random the cheaper wins. The average jumps to a slower response at once and
 * decays towards faster ones with the time constant `decay`, so a slowing endpoint is left at once
 * and taken back gradually. An endpoint with no response yet costs the default RTT.
 */
class PeakEwma extends WeightedRandom {
  override readonly observes = true;
  #now: () => number;
  #tau: number;

  constructor(deps: BalancerDeps, decayMs: number) {
    super(deps.random);
    this.#now = deps.now;
    this.#tau = decayMs;
  }

  override pick(_hash: string, avoid: Endpoint | undefined): Endpoint | undefined {
    if (this.list.length === 0) return undefined;
    if (this.list.length === 1) return this.list[0];
    const [a, b] = this.drawTwo(avoid);
    return this.#cost(b) < this.#cost(a) ? b : a;
  }

  override observe(ep: Endpoint, ms: number): void {
    const st = ep.state;
    const now = this.#now();
    if (st.ewmaAt === 0 || ms > st.ewma) st.ewma = ms;
    else {
      const w = Math.exp(-Math.max(0, now - st.ewmaAt) / this.#tau);
      st.ewma = st.ewma * w + ms * (1 - w);
    }
    st.ewmaAt = now;
  }

  #cost(e: Endpoint): number {
    const st = e.state;
    return (st.ewmaAt === 0 ? DEFAULT_RTT_MS : st.ewma) * (st.active + 1);
  }
}

/** What an endpoint costs before its first response: Linkerd's default RTT estimate. */
export const DEFAULT_RTT_MS = 30;

/**
 * Ketama-style ring hash: each endpoint owns virtualNodes × weight points on a 32-bit ring,
 * and a key goes to the first point at or after its hash. When an endpoint goes, only the keys on
 * its points move.
 */
class RingHash extends WeightedRandom {
  #perWeight: number;
  #points = new Uint32Array(0);
  #owners: Endpoint[] = [];

  constructor(perWeight: number, random: () => number) {
    super(random);
    this.#perWeight = perWeight;
  }

  override update(list: readonly Endpoint[]): void {
    super.update(list);
    const pts: { h: number; e: Endpoint }[] = [];
    for (const e of list) {
      const n = this.#perWeight * e.weight;
      for (let j = 0; j < n; j++) pts.push({ h: hash32(`${e.key}_${j}`, 0), e });
    }
    pts.sort((x, y) => x.h - y.h || (x.e.key < y.e.key ? -1 : 1));
    this.#points = Uint32Array.from(pts.map((p) => p.h));
    this.#owners = pts.map((p) => p.e);
  }

  override pick(hash: string, avoid: Endpoint | undefined): Endpoint | undefined {
    if (this.list.length === 0) return undefined;
    if (hash === '') return super.pick(hash, avoid);
    const pts = this.#points;
    const h = hash32(hash, 0);
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    let i = lo === pts.length ? 0 : lo;
    let e = this.#owners[i]!;
    // A retry goes to the next endpoint along the ring.
    for (let k = 0; e === avoid && this.list.length > 1 && k < pts.length; k++) {
      i = i + 1 === pts.length ? 0 : i + 1;
      e = this.#owners[i]!;
    }
    return e;
  }
}

/** Maglev's lookup table size: a prime, as the paper requires (Envoy's default). */
export const MAGLEV_TABLE_SIZE = 65537;

/**
 * Maglev (Eisenbud et al., 2016): a lookup table filled by each endpoint's own permutation of the
 * slots, in turns weighted by the endpoints' weights; a key's hash indexes the table. Lookup is one
 * array read, and when an endpoint goes most slots keep their owner.
 */
class Maglev extends WeightedRandom {
  #table = new Int32Array(0);

  override update(list: readonly Endpoint[]): void {
    super.update(list);
    const M = MAGLEV_TABLE_SIZE;
    const n = list.length;
    const table = new Int32Array(M).fill(-1);
    if (n > 0) {
      const offset = list.map((e) => hash32(e.key, 0) % M);
      const skip = list.map((e) => (hash32(e.key, 0x9e3779b9) % (M - 1)) + 1);
      const next = new Array<number>(n).fill(0);
      const maxW = Math.max(...list.map((e) => e.weight));
      const credit = new Array<number>(n).fill(0);
      let filled = 0;
      while (filled < M) {
        for (let i = 0; i < n && filled < M; i++) {
          credit[i]! += list[i]!.weight / maxW;
          if (credit[i]! < 1) continue;
          credit[i]! -= 1;
          let c = (offset[i]! + next[i]! * skip[i]!) % M;
          while (table[c]! >= 0) {
            next[i]!++;
            c = (offset[i]! + next[i]! * skip[i]!) % M;
          }
          table[c] = i;
          next[i]!++;
          filled++;
        }
      }
    }
    this.#table = table;
  }

  override pick(hash: string, avoid: Endpoint | undefined): Endpoint | undefined {
    if (this.list.length === 0) return undefined;
    if (hash === '') return super.pick(hash, avoid);
    const t = this.#table;
    let i = hash32(hash, 0) % t.length;
    let e = this.list[t[i]!]!;
    for (let k = 0; e === avoid && this.list.length > 1 && k < t.length; k++) {
      i = i + 1 === t.length ? 0 : i + 1;
      e = this.list[t[i]!]!;
    }
    return e;
  }
}

/** FNV-1a over UTF-16 code units with MurmurHash3's finalizer for avalanche; unsigned 32-bit. */
export function hash32(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
