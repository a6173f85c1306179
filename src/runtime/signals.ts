// Signals, as an orchestrator sends them: SIGTERM/SIGINT drain and exit; a second one exits at once
// (the operator means it); SIGHUP reloads the config.

import type { Logger } from 'pino';

export interface SignalTarget {
  shutdown(reason: string): Promise<void>;
  reload(trigger: string): Promise<unknown>;
}

const EXIT_CODE: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export function handleSignals(
  target: SignalTarget,
  opts: { logger: Logger; exit: (code: number) => void; proc?: NodeJS.EventEmitter },
): () => void {
  const proc = opts.proc ?? process;
  let stopping = false;
  const onStop = (signal: string) => {
    if (stopping) {
      opts.logger.warn({ signal }, 'second signal during drain: exiting now');
      opts.exit(EXIT_CODE[signal] ?? 1);
      return;
    }
    stopping = true;
    opts.logger.info({ signal }, 'signal received');
    void target.shutdown(signal);
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  const onHup = () => void target.reload('SIGHUP');
  proc.on('SIGTERM', onTerm);
  proc.on('SIGINT', onInt);
  proc.on('SIGHUP', onHup);
  return () => {
    proc.off('SIGTERM', onTerm);
    proc.off('SIGINT', onInt);
    proc.off('SIGHUP', onHup);
  };
}
