// Checks of the world a config points at, for `pillion validate` (as `nginx -t` does): a directory
// that will be written can be, a PEM file exists and parses, a key matches its certificate. They
// create nothing that stays: a writable directory is proven by a probe entry removed at once.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { ErrorCode } from './errors.js';

/** A problem with what a config key names, reported at that key's line:col. */
export interface PreflightIssue {
  path: (string | number)[];
  code: ErrorCode;
  message: string;
  hint?: string;
}

/**
 * Why files cannot be written in dir (created if missing), or undefined when they can. A missing
 * directory is probed in its nearest existing parent: never with a recursive mkdir, which on some
 * file systems (/proc) never returns.
 */
export async function writableDirProblem(dir: string): Promise<string | undefined> {
  let at = resolve(dir);
  let missing: string | undefined;
  for (;;) {
    try {
      const st = await stat(at);
      if (!st.isDirectory()) return `${at} is not a directory`;
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return `cannot look at ${at} (${code ?? (err as Error).message})`;
      missing = at;
      const up = dirname(at);
      if (up === at) return `${at} does not exist`;
      at = up;
    }
  }
  try {
    if (missing) {
      // Create the first missing directory itself: that is what would fail, under /proc say.
      await mkdir(missing);
      await rmdir(missing);
    } else {
      await rmdir(await mkdtemp(join(at, '.pillion-validate-')));
    }
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return missing ? `cannot create ${missing} (${code})` : `cannot write in ${at} (${code})`;
  }
}

/** Reads a PEM file of certificates; the reason it cannot be used, or undefined. */
export async function certificateFileProblem(file: string): Promise<string | undefined> {
  const data = await readSmall(file);
  if (typeof data === 'string') return data;
  try {
    new X509Certificate(data);
    return undefined;
  } catch {
    return `${file} holds no PEM certificate`;
  }
}

/** Reads a certificate and its key; which of the two cannot be used and why, or undefined. */
export async function keyPairProblem(
  certFile: string,
  keyFile: string,
): Promise<{ file: 'cert' | 'key'; message: string } | undefined> {
  const cert = await readSmall(certFile);
  if (typeof cert === 'string') return { file: 'cert', message: cert };
  const key = await readSmall(keyFile);
  if (typeof key === 'string') return { file: 'key', message: key };
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return { file: 'cert', message: `${certFile} holds no PEM certificate` };
  }
  try {
    if (x509.checkPrivateKey(createPrivateKey(key))) return undefined;
  } catch {
    return { file: 'key', message: `${keyFile} holds no private key of the certificate's type` };
  }
  return { file: 'key', message: `key ${keyFile} does not match certificate ${certFile}` };
}

async function readSmall(file: string): Promise<Buffer | string> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return `${file} is not a regular file`;
    if (st.size > 1024 * 1024) return `${file} is larger than 1 MiB`;
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? `${file} does not exist`
      : `cannot read ${file} (${code ?? (err as Error).message})`;
  }
}
