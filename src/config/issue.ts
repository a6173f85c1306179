// A single config problem, reported as `file:line:col CODE path: message (hint)`.

import type { ErrorCode } from '../lib/errors.js';

export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  code: ErrorCode;
  /** Dotted config path, e.g. admin.listen or routes[2].match. */
  path: string;
  message: string;
  hint?: string | undefined;
}

export function formatIssue(issue: ConfigIssue): string {
  const hint = issue.hint ? ` (${issue.hint})` : '';
  return `${issue.file}:${issue.line}:${issue.col} ${issue.code} ${issue.path}: ${issue.message}${hint}`;
}

export function compareIssues(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.col - b.col || a.code.localeCompare(b.code);
}
