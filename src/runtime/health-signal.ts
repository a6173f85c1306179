// A value that says whether something (the app) is healthy, and tells listeners when that changes.
// Inbound traffic gating subscribes to it; the app health module writes it.

export type HealthListener = (healthy: boolean, reason: string | undefined) => void;

export class HealthSignal {
  #healthy: boolean;
  #reason: string | undefined;
  #listeners = new Set<HealthListener>();

  constructor(healthy: boolean, reason?: string) {
    this.#healthy = healthy;
    this.#reason = reason;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  get reason(): string | undefined {
    return this.#reason;
  }

  set(healthy: boolean, reason?: string): void {
    const changed = healthy !== this.#healthy;
    this.#healthy = healthy;
    this.#reason = healthy ? undefined : reason;
    if (changed) for (const l of this.#listeners) l(healthy, this.#reason);
  }

  onChange(listener: HealthListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
