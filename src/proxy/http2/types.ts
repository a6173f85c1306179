// The contract between a listener and its HTTP/2 side.

import type net from 'node:net';
import type { PeerIdentity } from '../peer.js';

export interface H2Handler {
  /** Serves HTTP/2 on a connection (TCP or TLS); head holds bytes already read from it (the h2c preface). */
  accept(socket: net.Socket, head?: Buffer, peer?: PeerIdentity): void;
  /** Sends GOAWAY to every session; in-flight streams finish. */
  drain(): void;
  /** Destroys every session now. */
  close(): void;
  /** Sessions open. */
  readonly sessions: number;
}
