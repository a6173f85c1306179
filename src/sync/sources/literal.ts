// The `literal` source: a value written in pillion.yaml itself, a text or a mapping of keys.

import type { LiteralSourceConfig } from '../config.js';
import { ONLY, type Source, type SourceHost } from './source.js';

export class LiteralSource implements Source {
  readonly #cfg: LiteralSourceConfig;
  readonly #host: SourceHost;

  constructor(_name: string, cfg: LiteralSourceConfig, host: SourceHost) {
    this.#cfg = cfg;
    this.#host = host;
  }

  start(): void {
    const v = this.#cfg.value;
    if (typeof v === 'string') this.#host.update(new Map([[ONLY, v]]), 'literal');
    else this.#host.update(new Map(Object.entries(v)), 'literal', true);
  }

  stop(): void {}
}
