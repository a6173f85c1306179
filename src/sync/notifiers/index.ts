// The notifier kinds, by `type`.

import type { NotifierConfig } from '../config.js';
import { PillionError } from '../../lib/errors.js';
import { POD_DIR_ENV } from '../index.js';
import { CommandSender } from './command.js';
import { ContainerSignalSender } from './container.js';
import { HttpSender } from './http.js';
import type { Sender } from './notifier.js';
import { SignalSender } from './signal.js';

export { Notifier, type Sender } from './notifier.js';

export function createSender(
  name: string,
  cfg: NotifierConfig,
  env: Readonly<Record<string, string | undefined>> = {},
): Sender {
  switch (cfg.type) {
    case 'signal':
      if (cfg.container !== undefined) {
        // The config loader refuses `container` outside a pod; a reload's environment is the same.
        const podDir = env[POD_DIR_ENV];
        if (!podDir)
          throw new PillionError(
            'PILLION_ERR_SYNC_NOTIFY',
            `notifier ${name}: container needs pillion pod (${POD_DIR_ENV} is not set)`,
          );
        return new ContainerSignalSender(podDir, cfg.container, cfg.signal);
      }
      return new SignalSender(cfg);
    case 'http':
      return new HttpSender(name, cfg);
    case 'command':
      return new CommandSender(cfg);
  }
}
