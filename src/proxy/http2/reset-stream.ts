// Resetting an HTTP/2 stream so that the peer sees a reset, not a complete message.

import http2, { type Http2Stream } from 'node:http2';

const { NGHTTP2_NO_ERROR } = http2.constants;
const EMPTY = Buffer.alloc(0);

/**
 * Closes a stream with RST_STREAM(code). Node's close() first ends the writable side, and when no
 * write is in flight that end is sent at once as END_STREAM, before the reset, which then goes
 * out as NO_ERROR: the peer would take a truncated body for a whole one. An empty write in flight
 * holds the end back until the reset has gone.
 */
export function resetStream(
  stream: Pick<Http2Stream, 'closed' | 'destroyed' | 'writableEnded' | 'write' | 'close'>,
  code: number,
): void {
  if (stream.closed || stream.destroyed) return;
  if (code !== NGHTTP2_NO_ERROR && !stream.writableEnded) stream.write(EMPTY);
  stream.close(code);
}
