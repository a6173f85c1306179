// SPIFFE identities: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, and the
// principal Istio derives from one (the URI without its scheme), which authorization policies,
// the access log and X-Forwarded-Client-Cert carry.

import { subjectAltNames } from '../lib/subject-alt-name.js';

const SCHEME = 'spiffe://';
/** Trust domains are DNS-like names (SPIFFE ID spec §2.1): lower-case letters, digits, `.`, `-`, `_`. */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
/** Path segments: the SPIFFE ID spec's characters, never empty, `.` or `..`. */
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export interface SpiffeId {
  /** The whole ID, `spiffe://cluster.local/ns/default/sa/orders`. */
  uri: string;
  trustDomain: string;
  /** The path after the trust domain, starting with `/`, or '' when there is none. */
  path: string;
  /** From an Istio-style path (`/ns/<ns>/sa/<sa>`); '' otherwise. */
  namespace: string;
  serviceAccount: string;
}

/** Parses a SPIFFE ID; returns the reason it is not one as a string. */
export function parseSpiffeId(text: string): SpiffeId | string {
  if (!text.startsWith(SCHEME)) return 'a SPIFFE ID starts with spiffe://';
  if (text.length > 2048) return 'a SPIFFE ID is at most 2048 bytes';
  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (!TRUST_DOMAIN.test(trustDomain))
    return `"${trustDomain}" is not a trust domain (lower-case letters, digits, ".", "-" and "_")`;
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const s of segments) {
      if (s === '' || s === '.' || s === '..' || !SEGMENT.test(s))
        return `"${path}" is not a SPIFFE path (segments of letters, digits, ".", "-" and "_", none empty, "." or "..")`;
    }
  }
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(path);
  return {
    uri: text,
    trustDomain,
    path,
    namespace: m ? m[1]! : '',
    serviceAccount: m ? m[2]! : '',
  };
}

/** The principal as Istio writes it: the SPIFFE ID without `spiffe://`. */
export function principalOf(uri: string): string {
  return uri.startsWith(SCHEME) ? uri.slice(SCHEME.length) : uri;
}

/** The namespace of an Istio principal (`cluster.local/ns/<ns>/sa/<sa>`), or ''. */
export function namespaceOfPrincipal(principal: string): string {
  const at = principal.indexOf('/ns/');
  if (at === -1) return '';
  const start = at + 4;
  const end = principal.indexOf('/', start);
  return end === -1 ? principal.slice(start) : principal.slice(start, end);
}

/** The SPIFFE IDs among a certificate's URI SANs, from Node's `subjectAltName` string. */
export function spiffeUrisOf(subjectAltName: string | undefined): string[] {
  const out: string[] = [];
  for (const e of subjectAltNames(subjectAltName))
    if (e.type === 'URI' && e.value.startsWith(SCHEME)) out.push(e.value);
  return out;
}
