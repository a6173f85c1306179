// How every command ends: once stdout and stderr have handed their last byte to the kernel, exit
// with the command's code, whatever else still holds the event loop (a pipe a stray process keeps
// open, say). Writes to a pipe are asynchronous once its 64 KiB buffer is full: exiting without
// waiting cuts `pillion schema | wc -c` at 65 536 bytes.

/**
 * Resolves when everything written to the stream so far has been written out, or cannot be: a
 * reader that went away (`pillion schema | head -1`) is not an error of the command, which ends
 * quietly with its own code, as a tool killed by SIGPIPE would.
 */
export function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || !stream.writable) return Promise.resolve();
  return new Promise((resolve) => {
    // From the flush on only (the process exits next): a long-running command (pod up) handles a
    // closed stdout its own way while it runs.
    stream.on('error', () => resolve());
    // Writes complete in order, so an empty write's callback runs after every earlier one.
    stream.write('', () => resolve());
  });
}

export async function exitAfterFlush(code: number): Promise<never> {
  process.exitCode = code;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}
