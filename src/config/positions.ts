// Maps a config path (["admin", "listen"]) back to where it stands in the YAML source, so every
// error can say file:line:col. Works on the parsed Document, before it is turned into plain data.

import { type Document, isMap, isPair, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import type { ErrorCode } from '../lib/errors.js';
import type { ConfigIssue } from './issue.js';

export interface Position {
  line: number;
  col: number;
}

export type PathSegment = string | number;

/**
 * Finds the position of the node at path. With `key`, the position of the last segment's key
 * (where an unknown key is written); otherwise of its value. When the path runs out of the
 * document (a missing key), the deepest node that exists is used.
 */
export function locate(doc: Document, lc: LineCounter, path: readonly PathSegment[], key = false): Position {
  let node: unknown = doc.contents;
  let best: Node | null = isNode(node) ? node : null;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      if (!pair) break;
      const last = i === path.length - 1;
      if (last && key && isNode(pair.key)) {
        best = pair.key;
        break;
      }
      node = pair.value;
      if (isNode(node)) best = node;
      else if (isNode(pair.key)) best = pair.key; // "key:" with no value
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (!isNode(node)) break;
      best = node;
    } else {
      break;
    }
  }
  const offset = best?.range?.[0] ?? 0;
  const pos = lc.linePos(offset);
  return { line: pos.line, col: pos.col };
}

export function positionOf(lc: LineCounter, offset: number): Position {
  const pos = lc.linePos(offset);
  return { line: pos.line, col: pos.col };
}

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && 'range' in value;
}

/** Renders a path as users write it: admin.listen, routes[2].match. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(root)' : out;
}

/** Where issues of one document are reported: its file, parsed document and line counter. */
export interface IssueSite {
  file: string;
  doc: Document;
  lc: LineCounter;
}

/** An issue at a config path, positioned at its value (or, with `key`, at its key). */
export function issueAt(
  site: IssueSite,
  path: readonly PathSegment[],
  code: ErrorCode,
  message: string,
  hint?: string,
  key = false,
): ConfigIssue {
  return {
    file: site.file,
    ...locate(site.doc, site.lc, path, key),
    code,
    path: formatPath(path),
    message,
    hint,
  };
}
