// Prints config issues for a person: the one-line `file:line:col CODE path: message (hint)` form,
// followed by the source line with a caret under the column, so a fix takes seconds.

import { type ConfigIssue, formatIssue, isSecretKey } from '../config/index.js';

export function renderIssues(
  issues: readonly ConfigIssue[],
  text: string | undefined,
  color: boolean,
  /** The file `text` is; issues in other files (Istio resources) get no source line. */
  file?: string,
): string {
  const lines = text?.split(/\r?\n/) ?? [];
  const red = (s: string) => (color ? `\x1b[31m${s}\x1b[39m` : s);
  const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[22m` : s);
  const out: string[] = [];
  for (const issue of issues) {
    out.push(formatIssue(issue));
    const src = lines[issue.line - 1];
    if (src !== undefined && text !== undefined && (file === undefined || issue.file === file)) {
      const gutter = `${issue.line} | `;
      out.push(dim(`  ${gutter}`) + maskSecret(src));
      out.push(`  ${' '.repeat(gutter.length + issue.col - 1)}${red('^')}`);
    }
  }
  const files = new Set(issues.map((i) => i.file));
  out.push(`${issues.length} error${issues.length === 1 ? '' : 's'} in ${[...files].join(', ')}`);
  return `${out.join('\n')}\n`;
}

// A line like `apiKey: abc123` shows its key but not its value.
function maskSecret(line: string): string {
  const m = /^(\s*-?\s*["']?([A-Za-z0-9_.-]+)["']?\s*:\s*)(.+)$/.exec(line);
  return m && isSecretKey(m[2]!) ? `${m[1]}[redacted]` : line;
}
