// HTTP/2 on the proxy's listeners: sessions accepted by ALPN (TLS) or prior knowledge (h2c),
// proxied to HTTP/1.1 or HTTP/2 upstreams.

export { createH2Handler } from './h2-handler.js';
export type { H2Handler } from './types.js';
