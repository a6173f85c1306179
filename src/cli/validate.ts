// `pillion validate -c FILE`: checks a config as `run` would, without starting anything (like
// `nginx -t`): the schema first, then what the config names: TLS files exist, parse and match
// their keys, directories to be written are writable. Exit 0 when valid, 1 with every error
// (file:line:col CODE path: message) when not.

import { type ConfigIssue, issuesInText } from '../config/index.js';
import { loadPillionConfig, pillionPreflight } from '../roles.js';
import { renderIssues } from './print-issues.js';

export async function validateCommand(opts: {
  config: string;
  format: 'text' | 'json';
  istio?: string[];
}): Promise<number> {
  const env = process.env;
  const result = await loadPillionConfig(opts.config, env, { istio: opts.istio ?? [] });
  let issues: ConfigIssue[] = result.ok ? [] : result.issues;
  if (result.ok) issues = issuesInText(result.text, opts.config, await pillionPreflight(result.config, env));
  const valid = issues.length === 0;
  if (opts.format === 'json') {
    process.stdout.write(`${JSON.stringify({ valid, errors: issues }, null, 2)}\n`);
    return valid ? 0 : 1;
  }
  if (valid) {
    process.stdout.write(`${opts.config}: valid\n`);
    return 0;
  }
  process.stderr.write(renderIssues(issues, result.text, process.stderr.isTTY === true, opts.config));
  return 1;
}
