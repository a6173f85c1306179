// The entries of a certificate's subjectAltName as Node's X509Certificate and getPeerCertificate()
// write it: `DNS:a.example, URI:spiffe://td/ns/x/sa/y, IP Address:127.0.0.1`, where an entry that
// itself holds a comma or a quote is JSON-quoted.

export interface SanEntry {
  /** `DNS`, `URI`, `IP Address`, `email`, ... as Node names them. */
  type: string;
  value: string;
}

export function subjectAltNames(san: string | undefined): SanEntry[] {
  if (san === undefined || san === '') return [];
  const out: SanEntry[] = [];
  for (const part of splitSan(san)) {
    const colon = part.indexOf(':');
    if (colon <= 0) continue;
    out.push({ type: part.slice(0, colon), value: unquote(part.slice(colon + 1)) });
  }
  return out;
}

function splitSan(san: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < san.length; i++) {
    const ch = san[i];
    if (ch === '\\' && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      parts.push(san.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = san.slice(start).trim();
  if (last) parts.push(last);
  return parts;
}

/** Undoes the JSON quoting Node applies to a SAN entry or subject value holding a comma or quote. */
export function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  try {
    return String(JSON.parse(value));
  } catch {
    return value;
  }
}
