// The identity capability's public surface: the local CA, SPIFFE IDs and principals.

export { CA_FILES, DEFAULT_WORKLOAD_TTL_MS, type IssuedCertificate, LocalCa } from './local-ca.js';
export { peerPrincipal } from './principal.js';
export { parseSpiffeId, principalOf, type SpiffeId, spiffeUrisOf } from './spiffe.js';
