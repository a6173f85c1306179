// How the tail source tells files apart and knows a file is still the one it read: device and
// inode, a fingerprint of the first bytes, and a mark of the bytes just before the read position.
// Also how a rotated file is recognised by its name (`app.log.1`, `app.log-20261205`).

import { createHash } from 'node:crypto';
import { read } from 'node:fs';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import type { FileIdentity, ReadMark, ResumePoint } from '../types.js';

const readAsync = promisify(read);

/** The fingerprint covers this many first bytes of a file (fewer while the file is shorter). */
export const FINGERPRINT_BYTES = 256;
/** A read mark covers this many bytes before the read position (fewer near the start). */
export const MARK_BYTES = 256;

export function fingerprint(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/** `birth`: the file's creation time (birthtimeMs); 0 or undefined where the file system does not say. */
export function identityOf(
  path: string,
  dev: number,
  ino: number,
  head: Buffer,
  birth?: number | undefined,
): FileIdentity {
  const id: FileIdentity = { path, dev, ino, fingerprint: fingerprint(head), fingerprintLength: head.length };
  if (birth !== undefined && birth > 0) id.birth = birth;
  return id;
}

export function markOf(offset: number, bytes: Buffer): ReadMark {
  return { offset, length: bytes.length, fingerprint: fingerprint(bytes) };
}

/** Whether a file's first bytes are those an identity was taken from (as far as it covers them). */
export function sameHead(identity: FileIdentity, head: Buffer): boolean {
  const len = identity.fingerprintLength;
  return head.length >= len && fingerprint(head.subarray(0, len)) === identity.fingerprint;
}

/**
 * Whether a checkpoint still describes the open file `fd` of `size` bytes: long enough, and the
 * bytes its mark covers unchanged. `scratch` holds at least MARK_BYTES.
 */
export async function verifyResume(
  fd: number,
  size: number,
  r: ResumePoint,
  scratch: Buffer,
): Promise<'ok' | 'truncated' | 'rewritten'> {
  if (size < r.offset) return 'truncated';
  const m = r.mark;
  if (m === undefined || m.length === 0) return 'ok';
  if (size < m.offset) return 'truncated';
  try {
    const n = (await readAsync(fd, scratch, 0, m.length, m.offset - m.length)).bytesRead;
    if (n === m.length && fingerprint(scratch.subarray(0, n)) === m.fingerprint) return 'ok';
  } catch {
    // Unreadable there: taken as changed.
  }
  return 'rewritten';
}

/**
 * Whether `name` is what rotation makes of the live file `live` (a path or a name): the live name
 * followed by `.`, `-` or `_` and more — logrotate's `app.log.1` and `app.log-20261205`, the
 * kubelet's `0.log.20261205-101500` — and not a compressed one.
 */
export function isRotatedName(live: string, name: string): boolean {
  const base = basename(live);
  if (name.length <= base.length + 1 || !name.startsWith(base)) return false;
  const sep = name.charCodeAt(base.length);
  if (sep !== 46 && sep !== 45 && sep !== 95) return false;
  return !COMPRESSED.test(name);
}

const COMPRESSED = /\.(gz|bz2|xz|zst|lz4|lzma|z|zip|7z)$/i;

/** Whether a file's first bytes are those of a compressed file (gzip, bzip2, xz, zstd, lz4, zip). */
export function looksCompressed(head: Buffer): boolean {
  if (head.length < 4) return false;
  const [a, b, c, d] = [head[0]!, head[1]!, head[2]!, head[3]!];
  return (
    (a === 0x1f && b === 0x8b) || // gzip
    (a === 0x42 && b === 0x5a && c === 0x68) || // bzip2 "BZh"
    (a === 0xfd && b === 0x37 && c === 0x7a && d === 0x58) || // xz
    (a === 0x28 && b === 0xb5 && c === 0x2f && d === 0xfd) || // zstd
    (a === 0x04 && b === 0x22 && c === 0x4d && d === 0x18) || // lz4
    (a === 0x50 && b === 0x4b && c === 0x03 && d === 0x04) // zip
  );
}
