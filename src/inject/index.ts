// Kubernetes: the injector shared by `pillion inject` and the admission webhook, the manifest
// rewrite, and iptables interception.

export { ANNOTATIONS, podOptions } from './annotations.js';
export {
  defaultInjectorConfig,
  type InjectorConfig,
  injectorSchema,
  type SidecarSettings,
} from './config.js';
export { decide, type InjectOutcome, injectTemplate, type PodTemplate, type SkipReason } from './injector.js';
export { applyRules, iptablesRules, parsePlan } from './iptables.js';
export { type InjectFileResult, injectManifests, TEMPLATE_PATHS } from './manifests.js';
