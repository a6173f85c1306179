// The modules this build runs, in start order. Each role adds its definition here.

import { logsModule } from '../logs/index.js';
import { appModule } from './app-health.js';
import { inboundModule, outboundModule } from '../proxy/index.js';
import { syncModule } from '../sync/index.js';
import type { ModuleDefinition } from './module.js';

export function builtinModules(): ModuleDefinition<unknown>[] {
  return [
    appModule(),
    syncModule(),
    inboundModule(),
    outboundModule(),
    logsModule(),
  ] as ModuleDefinition<unknown>[];
}
