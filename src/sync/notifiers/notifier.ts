// How the app is told of a change. A sender does one thing (a signal, a request, a command); the
// Notifier around it adds `debounce` (changes close together are told once) and `splay` (a random
// wait, so many sidecars do not reload their apps at the same instant), both on the injected clock.

import type { Clock } from '../../lib/clock.js';

export interface Sender {
  /** Tells the app once; rejects with PILLION_ERR_SYNC_NOTIFY (or PILLION_ERR_SYNC_EXEC). */
  send(): Promise<void>;
  close?(): void;
}

export class Notifier {
  readonly name: string;
  readonly #sender: Sender;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #debounce: number;
  readonly #splay: number;
  #pending: Promise<void> | undefined;

  constructor(
    name: string,
    sender: Sender,
    opts: { clock: Clock; random: () => number; debounce: number; splay: number },
  ) {
    this.name = name;
    this.#sender = sender;
    this.#clock = opts.clock;
    this.#random = opts.random;
    this.#debounce = opts.debounce;
    this.#splay = opts.splay;
  }

  /** Tells the app; a call while one is waiting to be sent joins it. */
  notify(): Promise<void> {
    if (this.#pending) return this.#pending;
    const delay = this.#debounce + Math.round(this.#random() * this.#splay);
    if (delay === 0) return this.#sender.send();
    this.#pending = new Promise<void>((resolve) => {
      this.#clock.setTimeout(resolve, delay);
    }).then(() => {
      this.#pending = undefined;
      return this.#sender.send();
    });
    return this.#pending;
  }

  close(): void {
    this.#sender.close?.();
  }
}
