// `pillion validate -c FILE`: checks a config without starting anything. Exit 0 when valid,
// 1 with every error (file:line:col CODE path: message) when not.

import { loadPillionConfig } from '../runtime/index.js';
import { renderIssues } from './print-issues.js';

export async function validateCommand(opts: { config: string; format: 'text' | 'json' }): Promise<number> {
  const result = await loadPillionConfig(opts.config, process.env);
  if (opts.format === 'json') {
    process.stdout.write(
      `${JSON.stringify(result.ok ? { valid: true, errors: [] } : { valid: false, errors: result.issues }, null, 2)}\n`,
    );
    return result.ok ? 0 : 1;
  }
  if (result.ok) {
    process.stdout.write(`${opts.config}: valid\n`);
    return 0;
  }
  process.stderr.write(renderIssues(result.issues, result.text, process.stderr.isTTY === true));
  return 1;
}
