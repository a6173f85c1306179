// The contract between a listener and its HTTP/2 side.

import type { Duplex } from 'node:stream';

export interface H2Handler {
  /** Serves HTTP/2 on a connection; head holds bytes already read from it (the h2c preface). */
  accept(socket: Duplex, head?: Buffer): void;
  /** Sends GOAWAY to every session; in-flight streams finish. */
  drain(): void;
  /** Destroys every session now. */
  close(): void;
  /** Sessions open. */
  readonly sessions: number;
}
