// TLS for the proxy's listeners: certificates by SNI, client-certificate verification, hot rotation.

export {
  CertStore,
  type CertificateDescription,
  type CertStoreDeps,
  type TlsCertificateFiles,
  type TlsListenerSettings,
} from './cert-store.js';
export { type TlsParameters, type TlsProfileName, tlsParameters } from './profiles.js';
