// The `env` source: variables of pillion's environment, by name or by prefix. Read at start; the
// environment of a running process does not change, so there is nothing to watch.

import type { EnvSourceConfig } from '../config.js';
import type { Source, SourceHost } from './source.js';

export class EnvSource implements Source {
  readonly #cfg: EnvSourceConfig;
  readonly #host: SourceHost;

  constructor(_name: string, cfg: EnvSourceConfig, host: SourceHost) {
    this.#cfg = cfg;
    this.#host = host;
  }

  start(): void {
    const values = new Map<string, string>();
    const env = this.#host.env;
    for (const name of this.#cfg.names ?? []) {
      const v = env[name];
      if (v !== undefined) values.set(name, v);
    }
    const prefix = this.#cfg.prefix;
    if (prefix !== undefined)
      for (const [k, v] of Object.entries(env))
        if (k.startsWith(prefix) && v !== undefined && k.length > prefix.length)
          values.set(k.slice(prefix.length), v);
    this.#host.update(values, 'env');
  }

  stop(): void {}
}
