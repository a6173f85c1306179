// HTTP/2 on the proxy's listeners: sessions accepted by ALPN (TLS) or prior knowledge (h2c),
// proxied to HTTP/1.1 or HTTP/2 upstreams.

export type { H2Handler } from './types.js';
