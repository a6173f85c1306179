// The process and host view (/top, `pillion top`, `pillion pod top`): read from /proc and cgroups,
// loaded only when one of them is asked for.

export { ownCgroupMemory, readProcess, type ProcessReading } from './proc.js';
export {
  podContainers,
  type ProcessRow,
  type Scope,
  TopSampler,
  type TopOptions,
  type TopSnapshot,
  treesOf,
} from './sampler.js';
export { type ContainerUsage, podUsage } from './pod-usage.js';
export { alignRows, formatBytes, renderTopTable } from './table.js';
export { topFamilies } from './top-metrics.js';
