// The signal notifier for a container of the same pod: under `pillion pod`, the container's
// current pid is read from the pod's status at each notification (a restart changes it), and
// the signal goes to its process group, as the pod runner sends its own.

import { PillionError } from '../../lib/errors.js';
import type { SignalName } from '../config.js';
import type { Sender } from './notifier.js';

export class ContainerSignalSender implements Sender {
  readonly #podDir: string;
  readonly #container: string;
  readonly #signal: SignalName;

  constructor(podDir: string, container: string, signal: SignalName) {
    this.#podDir = podDir;
    this.#container = container;
    this.#signal = signal;
  }

  async send(): Promise<void> {
    // The pod's code is loaded only by a notifier that names a container.
    const { runningContainerPid } = await import('../../pod/index.js');
    const pid = runningContainerPid(this.#podDir, this.#container);
    if (typeof pid !== 'number')
      throw new PillionError('PILLION_ERR_SYNC_NOTIFY', `cannot send ${this.#signal}: ${pid.problem}`);
    try {
      process.kill(-pid, this.#signal);
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_SYNC_NOTIFY',
        `cannot send ${this.#signal} to container "${this.#container}" (process group ${pid}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
}
