// A sink's current run of failures, kept in `<dataDir>/health/<sink>.json` from its first failure
// to its first success: a restart during an outage then does not make the sink look healthy for
// another unhealthyAfter. Written only when a run of failures starts or ends.

import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomicSync } from '../../lib/atomic-write.js';

export interface FailingState {
  /** Clock time of the first failure of the run. */
  failingSince: number;
  /** Why the first failure happened. */
  reason: string;
}

export class FailingSinceFile {
  readonly #file: string;
  readonly #log: Logger;

  constructor(dataDir: string, sink: string, logger: Logger) {
    this.#file = join(dataDir, 'health', `${sink}.json`);
    this.#log = logger;
  }

  /** The run of failures going on when the process last stopped, if there was one. */
  load(): FailingState | undefined {
    let text: string;
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch {
      return undefined; // none: the sink was not failing when the process stopped
    }
    try {
      const st = JSON.parse(text) as Partial<FailingState>;
      if (typeof st.failingSince !== 'number' || !Number.isFinite(st.failingSince)) return undefined;
      return {
        failingSince: st.failingSince,
        reason: typeof st.reason === 'string' ? st.reason : 'failing before the restart',
      };
    } catch {
      return undefined; // torn by a crash: the run starts again at the next failure
    }
  }

  /** Records a run of failures, or with undefined its end. Never throws: delivery does not depend on it. */
  save(st: FailingState | undefined): void {
    try {
      if (st === undefined) rmSync(this.#file, { force: true });
      else {
        mkdirSync(dirname(this.#file), { recursive: true });
        writeFileAtomicSync(this.#file, Buffer.from(JSON.stringify(st)), { mode: 0o600, sync: false });
      }
    } catch (err) {
      // Readiness after a restart may then be green for unhealthyAfter; delivery is not affected.
      this.#log.warn(
        { code: 'PILLION_ERR_LOGS_DATA_DIR', err, file: this.#file },
        'cannot record the sink failing in the data directory',
      );
    }
  }
}
