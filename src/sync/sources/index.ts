// The source kinds, by `type`. Each is a small class yielding versions of its value to the engine.

import type { SourceConfig } from '../config.js';
import { ConsulSource } from './consul.js';
import { DirectorySource } from './directory.js';
import { EnvSource } from './env.js';
import { EtcdSource } from './etcd.js';
import { FileSource } from './file.js';
import { HttpSource } from './http.js';
import { LiteralSource } from './literal.js';
import { VaultSource } from './vault.js';
import type { Source, SourceHost } from './source.js';

export { ONLY, Retry, type Source, type SourceHost } from './source.js';

export function createSource(name: string, cfg: SourceConfig, host: SourceHost): Source {
  switch (cfg.type) {
    case 'file':
      return new FileSource(name, cfg, host);
    case 'directory':
      return new DirectorySource(name, cfg, host);
    case 'http':
      return new HttpSource(name, cfg, host);
    case 'etcd':
      return new EtcdSource(name, cfg, host);
    case 'consul':
      return new ConsulSource(name, cfg, host);
    case 'vault':
      return new VaultSource(name, cfg, host);
    case 'env':
      return new EnvSource(name, cfg, host);
    case 'literal':
      return new LiteralSource(name, cfg, host);
  }
}

/** Whether a source holds one value (templates read it as itself) or named keys (read as an object). */
export function isSingle(cfg: SourceConfig): boolean {
  switch (cfg.type) {
    case 'file':
    case 'http':
      return true;
    case 'literal':
      return typeof cfg.value === 'string';
    case 'etcd':
      return !cfg.prefix;
    case 'consul':
      return !cfg.recurse;
    default:
      return false;
  }
}

/** Whether a source's failure can make it stale (env and literal cannot fail). */
export function canGoStale(cfg: SourceConfig): cfg is Extract<SourceConfig, { staleAfter: number }> {
  return 'staleAfter' in cfg;
}
