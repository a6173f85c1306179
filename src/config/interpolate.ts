// ${VAR} and ${VAR:-default} in config values, resolved from an injected environment. Works on
// the YAML document so a missing variable is reported where it is used. "$${" writes a literal
// "${". A plain (unquoted) scalar that is wholly one reference is re-typed after substitution,
// so `port: ${APP_PORT}` yields a number, as it would had the number been written there.

import { type Document, isScalar, type LineCounter, Scalar, visit } from 'yaml';
import type { ConfigIssue } from './issue.js';
import { formatPath, positionOf } from './positions.js';

export type Env = Readonly<Record<string, string | undefined>>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function interpolate(
  doc: Document,
  lc: LineCounter,
  env: Env,
  file: string,
  text: string,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const pathText = formatPath(scalarPath(path, node));
      const result = substitute(node.value, env);
      if (!result.ok) {
        // Point at the reference itself in the source (it may be lines into a block scalar).
        const [from, to] = node.range ?? [0, 0];
        const source = text.slice(from, to);
        for (const e of result.errors) {
          const at = source.indexOf(e.ref);
          const where = positionOf(lc, from + Math.max(0, at));
          issues.push({ file, ...where, code: e.code, path: pathText, message: e.message, hint: e.hint });
        }
        return;
      }
      const wholeRef = /^\$\{[^}]*\}$/.test(node.value);
      node.value = wholeRef && node.type === Scalar.PLAIN ? retype(result.value) : result.value;
    },
  });
  return issues;
}

interface SubstError {
  code: 'PILLION_ERR_CONFIG_ENV_MISSING' | 'PILLION_ERR_CONFIG_ENV_SYNTAX';
  /** Never quotes the value around the reference: it may be a secret. */
  message: string;
  hint?: string;
  /** The reference as written (up to its closing brace), to find it in the source. */
  ref: string;
}

export function substitute(
  text: string,
  env: Env,
): { ok: true; value: string } | { ok: false; errors: SubstError[] } {
  let out = '';
  const errors: SubstError[] = [];
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      out += '${';
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      out += '$';
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close < 0) {
      errors.push({
        code: 'PILLION_ERR_CONFIG_ENV_SYNTAX',
        message: 'a "${" is not closed by "}"',
        hint: 'write ${NAME} or ${NAME:-default}; use $${ for a literal ${',
        ref: '${',
      });
      break;
    }
    const body = text.slice(dollar + 2, close);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    const ref = text.slice(dollar, close + 1);
    if (sep >= 0 && body.slice(sep + 2).includes('${')) {
      errors.push({
        code: 'PILLION_ERR_CONFIG_ENV_SYNTAX',
        message: `the default of \${${name}:-...} holds another reference; nested references are not supported`,
        hint: 'give the default as plain text, or set the variable',
        ref: text.slice(dollar, dollar + 2 + name.length),
      });
      const nestedClose = text.indexOf('}', close + 1);
      i = nestedClose < 0 ? text.length : nestedClose + 1;
      continue;
    }
    if (!NAME.test(name)) {
      errors.push({
        code: 'PILLION_ERR_CONFIG_ENV_SYNTAX',
        message: `"${name.length > 40 ? `${name.slice(0, 40)}…` : name}" is not a valid variable name`,
        hint: 'names are letters, digits and "_", not starting with a digit; use $${ for a literal ${',
        ref,
      });
    } else {
      const value = env[name];
      if (value !== undefined && (value !== '' || sep < 0)) out += value;
      else if (sep >= 0) out += body.slice(sep + 2);
      else
        errors.push({
          code: 'PILLION_ERR_CONFIG_ENV_MISSING',
          message: `environment variable ${name} is not set`,
          hint: `set ${name}, or give a default: \${${name}:-value}`,
          ref,
        });
    }
    i = close + 1;
  }
  return errors.length ? { ok: false, errors } : { ok: true, value: out };
}

function retype(value: string): string | number | boolean {
  if (/^-?(0|[1-9]\d*)(\.\d+)?$/.test(value)) return Number(value);
  if (value === 'true') return true;
  if (value === 'false') return false;
  return value;
}

// visit() hands us the chain of ancestors; turn it into the data path of this scalar.
function scalarPath(ancestors: readonly unknown[], node: unknown): (string | number)[] {
  const out: (string | number)[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i] as { items?: unknown[]; key?: unknown; value?: unknown };
    const child = chain[i + 1];
    if (Array.isArray(parent.items)) {
      const idx = parent.items.indexOf(child);
      const item = parent.items[idx] as { key?: unknown } | undefined;
      if (item && typeof item === 'object' && 'key' in item) continue; // a Pair: its key is added below
      if (idx >= 0) out.push(idx);
    } else if ('key' in parent && parent.value === child && isScalar(parent.key)) {
      out.push(String(parent.key.value));
    }
  }
  return out;
}
