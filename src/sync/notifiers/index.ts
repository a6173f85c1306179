// The notifier kinds, by `type`.

import type { NotifierConfig } from '../config.js';
import { CommandSender } from './command.js';
import { HttpSender } from './http.js';
import type { Sender } from './notifier.js';
import { SignalSender } from './signal.js';

export { Notifier, type Sender } from './notifier.js';

export function createSender(name: string, cfg: NotifierConfig): Sender {
  switch (cfg.type) {
    case 'signal':
      return new SignalSender(cfg);
    case 'http':
      return new HttpSender(name, cfg);
    case 'command':
      return new CommandSender(cfg);
  }
}
