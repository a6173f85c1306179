// Awaits a condition instead of sleeping for a guessed time: polls until it holds or the limit
// passes, then fails with what was being waited for.

export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; what?: string; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${opts.what ?? 'condition'}${last ? `: ${(last as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 20));
  }
}
