// The pod capability's public surface: read a manifest, run it, find pods on disk, and say how
// they are (kubectl's words).

export { type ContainerSpec, IGNORED_FIELDS, type PodSpec } from './config.js';
export { parseCriLine, readCriLog, rotatedFiles } from './cri-log.js';
export { describePod } from './describe.js';
export { loadManifest, type ManifestResult, type PodManifest, parseManifest } from './manifest.js';
export {
  containerRestarts,
  containerStateText,
  humanDuration,
  podSummary,
  podProblems,
  type PodSummary,
} from './pod-view.js';
export {
  chooseStateDir,
  type ContainerStatus,
  defaultStateDir,
  findPods,
  isAlive,
  type Phase,
  PodDirs,
  podNotFound,
  type PodRecord,
  type PodSpecRecord,
  type PodStatus,
  readPodRecord,
  runningContainerPid,
  type StateDirChoice,
} from './state.js';
export { type PodOutcome, Supervisor, type SupervisorOptions } from './supervisor.js';
