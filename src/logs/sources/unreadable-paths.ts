// The paths a tail source was given and cannot read (permissions, I/O): each logged once when it
// becomes unreadable and once when it can be read again, counted in a gauge, named in /readyz.

import type { SourceContext } from '../types.js';
import type { WalkErrors } from './glob.js';

/** The most paths named in one readiness reason. */
const REASON_PATHS = 3;

export class UnreadablePaths {
  readonly #ctx: SourceContext;
  /** Path → error code, as of the last scan. */
  #now: WalkErrors = new Map();

  constructor(ctx: SourceContext) {
    this.#ctx = ctx;
  }

  get size(): number {
    return this.#now.size;
  }

  /** The paths one whole scan could not read; logs what changed since the last. */
  report(problems: WalkErrors): void {
    const name = this.#ctx.name;
    for (const [path, code] of problems) {
      if (this.#now.get(path) === code) continue;
      this.#ctx.logger.warn(
        { code: 'PILLION_ERR_LOGS_UNREADABLE', path, error: code, source: name },
        `logs source "${name}" cannot read ${path} (${code}); what it holds is not followed until it can be read`,
      );
    }
    for (const path of this.#now.keys()) {
      if (!problems.has(path))
        this.#ctx.logger.info({ path, source: name }, `logs source "${name}" can read ${path} again`);
    }
    this.#now = problems;
    this.#ctx.stats.unreadablePaths.value = problems.size;
  }

  /** The readiness reason, or undefined when every path can be read. */
  reason(): string | undefined {
    if (this.#now.size === 0) return undefined;
    const list = [...this.#now].slice(0, REASON_PATHS).map(([p, code]) => `${p} (${code})`);
    const more = this.#now.size - list.length;
    return `logs source "${this.#ctx.name}" cannot read ${list.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  }
}
