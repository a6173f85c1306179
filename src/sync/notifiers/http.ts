// The HTTP notifier: a request to the app (`POST /reload`); a 2xx answer is success.

import { PillionError } from '../../lib/errors.js';
import type { NotifierConfig } from '../config.js';
import { HttpClient } from '../sources/http-client.js';
import type { Sender } from './notifier.js';

type HttpConfig = Extract<NotifierConfig, { type: 'http' }>;

export class HttpSender implements Sender {
  readonly #cfg: HttpConfig;
  readonly #client: HttpClient;

  constructor(name: string, cfg: HttpConfig) {
    this.#cfg = cfg;
    this.#client = new HttpClient(`notifier ${name}`);
  }

  async send(): Promise<void> {
    let status: number;
    try {
      status = (
        await this.#client.request(this.#cfg.url, {
          method: this.#cfg.method,
          headers: this.#cfg.headers,
          timeoutMs: this.#cfg.timeout,
          maxBytes: 64 * 1024,
        })
      ).status;
    } catch (err) {
      throw new PillionError('PILLION_ERR_SYNC_NOTIFY', (err as Error).message, { cause: err });
    }
    if (status < 200 || status > 299)
      throw new PillionError(
        'PILLION_ERR_SYNC_NOTIFY',
        `${this.#cfg.method} ${new URL(this.#cfg.url).origin}${new URL(this.#cfg.url).pathname} answered ${status}`,
      );
  }

  close(): void {
    this.#client.close();
  }
}
