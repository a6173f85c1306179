// The proxy capability's public surface: the inbound and outbound roles and their schemas.

export {
  type InboundConfig,
  inboundSchema,
  listenerMtlsMode,
  type OutboundConfig,
  outboundSchema,
} from './config.js';
export { inboundModule } from './inbound.js';
export { outboundModule } from './outbound.js';
export { proxyPreflight } from './preflight.js';
export { ProxyModule } from './proxy-module.js';
