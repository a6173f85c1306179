// The metrics capability's public surface: the shared registry and get-or-create helpers.

export { counter, createMetricsRegistry, gauge, histogram, Registry } from './registry.js';
