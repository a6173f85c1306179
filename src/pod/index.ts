// The pod capability's public surface: read a manifest, run it, and find pods on disk.

export { type ContainerSpec, IGNORED_FIELDS, type PodSpec } from './config.js';
export { parseCriLine, readCriLog, rotatedFiles } from './cri-log.js';
export { loadManifest, type ManifestResult, type PodManifest, parseManifest } from './manifest.js';
export {
  type ContainerStatus,
  defaultStateDir,
  findPods,
  isAlive,
  type Phase,
  PodDirs,
  type PodRecord,
  type PodStatus,
  readPodRecord,
} from './state.js';
export { type PodOutcome, Supervisor, type SupervisorOptions } from './supervisor.js';
