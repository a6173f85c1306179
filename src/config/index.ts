// The config capability's public surface: a generic YAML loader with positions, the field
// builders every section uses, and the schema-driven views (JSON Schema, docs, effective config).

export { renderConfigDocs } from './docs.js';
export { effectiveView, isSecretKey, REDACTED } from './effective.js';
export {
  addPillionIssue,
  address,
  componentName,
  describeValue,
  duration,
  httpPath,
  port,
  regex,
  secret,
  size,
} from './fields.js';
export type { Env } from './interpolate.js';
export { type ConfigIssue, formatIssue } from './issue.js';
export { type JsonSchema, toJsonSchema } from './json-schema.js';
export {
  type DocumentValidation,
  type LoadOptions,
  type LoadResult,
  loadConfigFile,
  loadConfigFileWith,
  type LoadWithOptions,
  parseConfigText,
  parseConfigTextWith,
  issuesInText,
  parseDocuments,
  readText,
  type ValidateOptions,
  validateDocument,
} from './loader.js';
export { compareIssues } from './issue.js';
export type { PlannedLookup } from './zod-issues.js';
export { type IssueSite, issueAt, type PathSegment, type Position } from './positions.js';
