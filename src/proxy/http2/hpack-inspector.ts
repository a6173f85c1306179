// Reads the HPACK header blocks (RFC 7541) a client sends, beside node's own decoder, to find the
// fields that nghttp2 leaves out without a word: a name or value with CR, LF, NUL, a space, a colon
// or another byte HTTP does not allow (RFC 9113 §8.2.1). Such a request is malformed and must not be
// forwarded without those fields; node gives no sign that any were dropped. Only what decoding
// needs is kept: the size and validity of each dynamic-table entry, never the strings.

import { TOKEN } from '../http1/head-parser.js';

/** The block is fine. */
export const BLOCK_OK = 0;
/** A regular field's name or value is not allowed: the request is malformed. */
export const BLOCK_MALFORMED = 1;
/** Not valid HPACK: nghttp2 ends the connection with COMPRESSION_ERROR on it too. */
export const BLOCK_UNDECODABLE = 2;

/**
 * SETTINGS_HEADER_TABLE_SIZE the proxy advertises (node's default, which the HTTP/2 handler keeps):
 * the most a client may size the dynamic table to.
 */
const MAX_TABLE_SIZE = 4096;

const F_NAME_OK = 1;
const F_VALUE_OK = 2;
const F_PSEUDO = 4;
const F_FIELD_OK = F_NAME_OK | F_VALUE_OK;

const HTAB = 0x09;
const SP = 0x20;
const COLON = 0x3a;

/** Names of the static table (RFC 7541 Appendix A), index 1 first; their values never matter here. */
const STATIC_NAMES = (
  ':authority :method :method :path :path :scheme :scheme :status :status :status :status :status ' +
  ':status :status accept-charset accept-encoding accept-language accept-ranges accept ' +
  'access-control-allow-origin age allow authorization cache-control content-disposition ' +
  'content-encoding content-language content-length content-location content-range content-type ' +
  'cookie date etag expect expires from host if-match if-modified-since if-none-match if-range ' +
  'if-unmodified-since last-modified link location max-forwards proxy-authenticate ' +
  'proxy-authorization range referer refresh retry-after server set-cookie ' +
  'strict-transport-security transfer-encoding user-agent vary via www-authenticate'
).split(' ');

/** The Huffman code of each byte value (RFC 7541 Appendix B), and its length in bits. */
const HUFFMAN_CODES = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8, 0xffffea,
  0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed, 0xfffffee, 0xfffffef,
  0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7,
  0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa,
  0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, 0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c,
  0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
  0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
  0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29,
  0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd,
  0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda,
  0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0,
  0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6,
  0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea,
  0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
  0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5,
  0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3,
  0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9,
  0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7,
  0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
  0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28,
  28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7,
  8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19,
  13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13,
  28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21,
  22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23,
  22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25,
  25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];
const EOS = 256;

/**
 * The Huffman code as a binary tree: node n's children are at 2n and 2n+1; a child is the index of
 * an inner node, or -(symbol + 1) for a leaf. Built once at load.
 */
const TREE = new Int32Array(2 * 512);
{
  let nodes = 1;
  const add = (code: number, bits: number, symbol: number): void => {
    let n = 0;
    for (let i = bits - 1; i >= 0; i--) {
      const slot = 2 * n + ((code >>> i) & 1);
      if (i === 0) TREE[slot] = -(symbol + 1);
      else {
        if (TREE[slot] === 0) TREE[slot] = nodes++;
        n = TREE[slot]!;
      }
    }
  };
  for (let s = 0; s < 256; s++) add(HUFFMAN_CODES[s]!, HUFFMAN_LENGTHS[s]!, s);
  add(0x3fffffff, 30, EOS);
}

/** A field value's bytes (RFC 9110 §5.5: field-vchar, SP, HTAB and obs-text). */
const VALUE_BYTE = new Uint8Array(256);
for (let c = 0; c < 256; c++) VALUE_BYTE[c] = c === HTAB || (c >= SP && c !== 0x7f) ? 1 : 0;

export class HpackInspector {
  // The dynamic table, oldest entry first: the size each entry counts for and its F_* flags.
  #sizes: number[] = [];
  #flags: number[] = [];
  #nameLengths: number[] = [];
  #tableSize = 0;
  #maxSize = MAX_TABLE_SIZE;
  // What the last string read was: its decoded length and F_* flags.
  #len = 0;
  #strFlags = 0;
  #first = -1;
  #last = -1;
  #ok = true;
  /** Read position in the block. */
  #p = 0;

  /** Reads one complete header block, updating the dynamic table as nghttp2 does. */
  inspect(buf: Buffer, start: number, end: number): number {
    let malformed = false;
    this.#p = start;
    while (this.#p < end) {
      const b = buf[this.#p]!;
      if ((b & 0x80) !== 0) {
        // Indexed field.
        const index = this.#int(buf, end, 7);
        if (index <= 0) return BLOCK_UNDECODABLE;
        if (index > STATIC_NAMES.length) {
          const at = this.#dynamic(index);
          if (at === -1) return BLOCK_UNDECODABLE;
          const f = this.#flags[at]!;
          if ((f & F_PSEUDO) === 0 && (f & F_FIELD_OK) !== F_FIELD_OK) malformed = true;
        }
        continue;
      }
      if ((b & 0xe0) === 0x20) {
        // Dynamic table size update.
        const size = this.#int(buf, end, 5);
        if (size < 0 || size > MAX_TABLE_SIZE) return BLOCK_UNDECODABLE;
        this.#maxSize = size;
        this.#evict(0);
        continue;
      }
      // A literal: with incremental indexing (01), without indexing (0000) or never indexed (0001).
      const indexing = (b & 0xc0) === 0x40;
      const index = this.#int(buf, end, indexing ? 6 : 4);
      if (index < 0) return BLOCK_UNDECODABLE;
      let nameLength: number;
      let nameFlags: number;
      if (index === 0) {
        if (!this.#string(buf, end, true)) return BLOCK_UNDECODABLE;
        nameLength = this.#len;
        nameFlags = this.#strFlags;
      } else if (index <= STATIC_NAMES.length) {
        const name = STATIC_NAMES[index - 1]!;
        nameLength = name.length;
        nameFlags = F_NAME_OK | (name.charCodeAt(0) === COLON ? F_PSEUDO : 0);
      } else {
        const at = this.#dynamic(index);
        if (at === -1) return BLOCK_UNDECODABLE;
        nameLength = this.#nameLengths[at]!;
        nameFlags = this.#flags[at]! & (F_NAME_OK | F_PSEUDO);
      }
      if (!this.#string(buf, end, false)) return BLOCK_UNDECODABLE;
      const flags = nameFlags | this.#strFlags;
      if ((flags & F_PSEUDO) === 0 && (flags & F_FIELD_OK) !== F_FIELD_OK) malformed = true;
      if (indexing) this.#insert(nameLength, this.#len, flags);
    }
    return malformed ? BLOCK_MALFORMED : BLOCK_OK;
  }

  /** Position in the arrays of dynamic index `index` (62 is the newest entry), or -1. */
  #dynamic(index: number): number {
    const i = index - STATIC_NAMES.length;
    const n = this.#sizes.length;
    return i <= n ? n - i : -1;
  }

  #insert(nameLength: number, valueLength: number, flags: number): void {
    const size = nameLength + valueLength + 32;
    // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
    this.#evict(size);
    if (size > this.#maxSize) return;
    this.#sizes.push(size);
    this.#flags.push(flags);
    this.#nameLengths.push(nameLength);
    this.#tableSize += size;
  }

  /** Evicts the oldest entries until `room` more bytes fit. */
  #evict(room: number): void {
    let drop = 0;
    const sizes = this.#sizes;
    while (drop < sizes.length && this.#tableSize + room > this.#maxSize) this.#tableSize -= sizes[drop++]!;
    if (drop > 0) {
      sizes.splice(0, drop);
      this.#flags.splice(0, drop);
      this.#nameLengths.splice(0, drop);
    }
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1), or -1 when truncated or absurdly large. */
  #int(buf: Buffer, end: number, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let v = buf[this.#p++]! & max;
    if (v < max) return v;
    for (let shift = 0; shift <= 21; shift += 7) {
      if (this.#p >= end) return -1;
      const b = buf[this.#p++]!;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    return -1;
  }

  /**
   * Reads a string literal (RFC 7541 §5.2), plain or Huffman-coded, checking its bytes as a name
   * or a value; sets #len and #strFlags. False when it is not valid HPACK.
   */
  #string(buf: Buffer, end: number, isName: boolean): boolean {
    if (this.#p >= end) return false;
    const huffman = (buf[this.#p]! & 0x80) !== 0;
    const length = this.#int(buf, end, 7);
    if (length < 0 || this.#p + length > end) return false;
    const s = this.#p;
    const e = s + length;
    this.#p = e;
    this.#len = 0;
    this.#first = -1;
    this.#last = -1;
    this.#ok = true;
    if (!huffman) {
      for (let i = s; i < e; i++) this.#byte(buf[i]!, isName);
    } else if (!this.#huffman(buf, s, e, isName)) return false;
    const n = this.#len;
    if (isName) {
      // Empty, or a colon anywhere but first: not a field name (pseudo-headers are nghttp2's to judge).
      const pseudo = n > 0 && this.#first === COLON;
      this.#strFlags = pseudo ? F_PSEUDO | F_NAME_OK : this.#ok && n > 0 ? F_NAME_OK : 0;
    } else {
      // No whitespace around a value (RFC 9113 §8.2.1).
      const ws =
        n > 0 && (this.#first === SP || this.#first === HTAB || this.#last === SP || this.#last === HTAB);
      this.#strFlags = this.#ok && !ws ? F_VALUE_OK : 0;
    }
    return true;
  }

  #byte(c: number, isName: boolean): void {
    if (this.#len === 0) this.#first = c;
    this.#last = c;
    this.#len++;
    if (isName) {
      // Token characters only; the colon of a pseudo-header is allowed as the first byte.
      if (TOKEN[c] !== 1 && !(c === COLON && this.#len === 1)) this.#ok = false;
    } else if (VALUE_BYTE[c] !== 1) this.#ok = false;
  }

  /** Decodes buf[s, e) (RFC 7541 §5.2, Appendix B) into #byte. False on an invalid code or padding. */
  #huffman(buf: Buffer, s: number, e: number, isName: boolean): boolean {
    let node = 0;
    let depth = 0; // bits read since the last symbol
    let ones = true; // and all of them were 1s (the only padding allowed: a prefix of EOS)
    for (let i = s; i < e; i++) {
      const b = buf[i]!;
      for (let bit = 7; bit >= 0; bit--) {
        const one = (b >>> bit) & 1;
        const next = TREE[2 * node + one]!;
        if (next < 0) {
          const symbol = -next - 1;
          if (symbol === EOS) return false;
          this.#byte(symbol, isName);
          node = 0;
          depth = 0;
          ones = true;
        } else {
          node = next;
          depth++;
          if (one === 0) ones = false;
        }
      }
    }
    return depth < 8 && ones;
  }
}
