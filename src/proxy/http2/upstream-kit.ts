// What the proxy needs of HTTP/2's code for an upstream that speaks it: the sessions, and the
// exchange and legs an HTTP/1.1 client's request takes to reach them. The proxy imports this
// module only when an upstream has protocol h2, so node:http2 and this code are not loaded for
// the HTTP/1.1 upstreams most sidecars have (listeners load HTTP/2 when a client speaks it:
// deferred-handler.ts).

export { ClientSessions } from './client-sessions.js';
export { Exchange } from './exchange.js';
export { H2Leg } from './h2-leg.js';
export { Http1Client } from './http1-client.js';

export type H2Kit = typeof import('./upstream-kit.js');
