// The stdout sink: one JSON object per line on the process's standard output (or any writable
// stream); a batch is acknowledged once the stream has taken it, so a slow reader slows the sink.

import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import { encodeLines } from './encode.js';

export function createStdoutDriver(out: NodeJS.WritableStream = process.stdout): SinkDriver {
  return new StdoutDriver(out);
}

class StdoutDriver implements SinkDriver {
  readonly #out: NodeJS.WritableStream;
  #error: Error | undefined;
  // Without a listener an EPIPE (the reader went away) would be thrown from the stream and end
  // the process; here it fails the batch instead.
  readonly #onError = (err: Error) => {
    this.#error = err;
  };

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
    out.on('error', this.#onError);
  }

  send(events: LogEvent[], _signal: AbortSignal): Promise<SendOutcome> {
    if (events.length === 0) return Promise.resolve({ kind: 'ok' });
    if (this.#error) return Promise.resolve(failed(this.#error));
    const text = encodeLines(events);
    return new Promise((resolve) => {
      try {
        // The callback runs once the stream has handed this chunk on, after what was queued
        // before it: resolving there is what respects the reader's pace.
        this.#out.write(text, (err?: Error | null) => resolve(err ? failed(err) : { kind: 'ok' }));
      } catch (err) {
        resolve(failed(err as Error));
      }
    });
  }

  async close(): Promise<void> {
    this.#out.off('error', this.#onError);
  }
}

function failed(err: Error): SendOutcome {
  return { kind: 'failed', retry: true, reason: `stdout: ${err.message}` };
}
