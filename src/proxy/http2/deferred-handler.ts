// A listener's HTTP/2 side, loaded when the first client speaks HTTP/2. A listener accepts h2c
// and offers h2 by ALPN by default, yet most clients of a sidecar speak HTTP/1.1: node:http2 and
// the handler's code (about 2 MB resident and 15 ms at start, README "Footprint") wait until a
// connection needs them. That connection waits for the import, paused: what its client sends
// meanwhile stays in the socket for the handler to read.

import type net from 'node:net';
import type { Logger } from 'pino';
import type { PeerIdentity } from '../peer.js';
import type { H2Handler } from './types.js';

export class DeferredH2Handler implements H2Handler {
  readonly #make: () => Promise<H2Handler>;
  readonly #logger: Logger;
  #real: H2Handler | undefined;
  #loading: Promise<void> | undefined;
  /** Connections handed over before the handler was loaded. */
  readonly #waiting = new Set<net.Socket>();
  #draining = false;
  #closed = false;

  constructor(make: () => Promise<H2Handler>, logger: Logger) {
    this.#make = make;
    this.#logger = logger;
  }

  accept(socket: net.Socket, head?: Buffer, peer?: PeerIdentity): void {
    if (this.#real !== undefined) {
      this.#real.accept(socket, head, peer);
      return;
    }
    if (this.#closed) {
      socket.destroy();
      return;
    }
    socket.pause();
    // Until the handler has it, a reset connection is only closed (an 'error' without a listener
    // would end the process).
    const onError = () => socket.destroy();
    socket.on('error', onError);
    this.#waiting.add(socket);
    this.#loading ??= this.#load();
    void this.#loading.then(() => {
      if (!this.#waiting.delete(socket)) return; // closed meanwhile
      socket.off('error', onError);
      if (socket.destroyed) return;
      if (this.#real === undefined) {
        socket.destroy();
        return;
      }
      this.#real.accept(socket, head, peer);
      // A drain asked for while the code loaded sends this session GOAWAY, as it would have.
      if (this.#draining) this.#real.drain();
    });
  }

  drain(): void {
    this.#draining = true;
    this.#real?.drain();
  }

  close(): void {
    this.#closed = true;
    this.#draining = true;
    this.#real?.close();
    for (const socket of this.#waiting) socket.destroy();
    this.#waiting.clear();
  }

  get sessions(): number {
    return (this.#real?.sessions ?? 0) + this.#waiting.size;
  }

  async #load(): Promise<void> {
    try {
      const real = await this.#make();
      if (this.#closed) {
        real.close();
        return;
      }
      this.#real = real;
    } catch (err) {
      // The connections waiting are closed; the next one tries (and says so) again.
      this.#loading = undefined;
      this.#logger.error({ err: (err as Error).message }, "HTTP/2's code could not be loaded");
    }
  }
}
