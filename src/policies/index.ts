// The policies capability's public surface: the `policies:` schema. The Istio reader
// (istio.ts) is imported by the config loader only when files are named.

export { type PoliciesConfig, policiesSchema } from './config.js';
export type { IstioTranslation, LoadedResource } from './istio.js';
