// Cutting UTF-8 at a byte limit without splitting a character (a split one decodes as U+FFFD and
// makes the piece invalid UTF-8), for log lines, syslog messages and CRI records.

/**
 * The largest cut at or below max (and buf.length) that does not split a UTF-8 character of buf.
 * When buf goes on past max, the byte after the cut decides (a continuation byte means the cut
 * is inside a character); when it does not, a last character whose lead byte announces more
 * bytes than buf has is cut off. On valid UTF-8 both give the same answer; on invalid bytes the
 * cut stays within 3 bytes of max.
 */
export function utf8Boundary(buf: Uint8Array, max: number): number {
  if (max <= 0) return 0;
  const len = buf.length;
  if (max < len) {
    let n = max;
    // Step back over continuation bytes (10xxxxxx) to the first byte of the character at max.
    while (n > 0 && n > max - 4 && (buf[n]! & 0xc0) === 0x80) n--;
    return n > max - 4 ? n : max;
  }
  let i = len - 1;
  while (i >= 0 && i > len - 4 && (buf[i]! & 0xc0) === 0x80) i--;
  if (i < 0) return len;
  const lead = buf[i]!;
  const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return len - i < size ? i : len;
}

/** The longest prefix of text that is at most maxBytes of UTF-8 and does not split a character. */
export function cutToBytes(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  return buf.toString('utf8', 0, utf8Boundary(buf, maxBytes));
}
