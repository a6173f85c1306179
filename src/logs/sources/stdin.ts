// Reads the process's standard input (or any readable stream) as lines, framed like tailed files
// but without checkpoints: what was read is handed on, and the stream is paused on backpressure.

import type { StdinSourceConfig } from '../config.js';
import { LossLog } from '../loss.js';
import type { LogEvent, LogSource, SourceContext } from '../types.js';
import { LineFramer } from './line-framer.js';

export function createStdinSource(
  config: StdinSourceConfig,
  ctx: SourceContext,
  parse: (text: string) => LogEvent,
  input: NodeJS.ReadableStream = process.stdin,
): LogSource {
  return new StdinSource(config, ctx, parse, input);
}

class StdinSource implements LogSource {
  #ctx: SourceContext;
  #input: NodeJS.ReadableStream;
  #framer: LineFramer;
  #chunkFrom = 0;
  #paused = false;
  #running = false;
  #ended = false;
  #onData = (data: Buffer | string): void => this.#data(data);
  #onEnd = (): void => this.#end();
  #onError = (err: Error): void => {
    this.#ctx.logger.warn({ err, source: this.#ctx.name }, 'cannot read standard input');
    this.#end();
  };

  constructor(
    config: StdinSourceConfig,
    ctx: SourceContext,
    parse: (text: string) => LogEvent,
    input: NodeJS.ReadableStream,
  ) {
    this.#ctx = ctx;
    this.#input = input;
    this.#framer = new LineFramer({
      format: config.format,
      maxLineBytes: config.maxLineBytes,
      multiline: config.multiline,
      parse,
      clock: ctx.clock,
      stats: ctx.stats,
      loss: new LossLog({
        source: ctx.name,
        series: (reason) => ctx.stats.lostBytes(reason),
        logger: ctx.logger,
        clock: ctx.clock,
      }),
      path: 'stdin',
      onReady: () => this.#emit(),
    });
  }

  async start(): Promise<void> {
    if (this.#running || this.#ended) return;
    this.#running = true;
    this.#input.on('data', this.#onData);
    this.#input.on('end', this.#onEnd);
    this.#input.on('error', this.#onError);
    this.#input.resume();
  }

  /** Hands on everything held, the last unterminated line too: nothing would resume it later. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#detach();
    // Paused, not destroyed: the next source built on a reload reads on from here.
    this.#input.pause();
    this.#framer.end();
    this.#emit();
    this.#framer.close();
  }

  #data(data: Buffer | string): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    this.#ctx.stats.bytes.value += buf.length;
    this.#framer.push(buf);
    this.#emit();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#framer.end();
    this.#emit();
    this.#detach();
    this.#framer.close();
  }

  #detach(): void {
    this.#running = false;
    this.#input.off('data', this.#onData);
    this.#input.off('end', this.#onEnd);
    this.#input.off('error', this.#onError);
  }

  #emit(): void {
    if (this.#framer.readyCount === 0) return;
    const events = this.#framer.take();
    const pos = this.#framer.position;
    const bytes = pos - this.#chunkFrom;
    this.#chunkFrom = pos;
    this.#ctx.stats.events.value += events.length;
    if (this.#ctx.emit({ source: this.#ctx.name, events, bytes }) || this.#paused || !this.#running) return;
    this.#paused = true;
    this.#input.pause();
    void this.#ctx.capacity().then(() => {
      this.#paused = false;
      if (this.#running) this.#input.resume();
    });
  }
}
