// The whole pillion.yaml: each section's schema comes from the capability that owns it.

import { z } from 'zod';
import { adminSchema } from '../admin/index.js';
import { type Env, type JsonSchema, type LoadResult, loadConfigFile, parseConfigText, toJsonSchema } from '../config/index.js';
import { appSchema, runtimeSchema } from './config.js';

/** Roles named in the design that later capabilities add; until then their sections are refused clearly. */
export const RESERVED_SECTIONS = ['inbound', 'outbound', 'logs', 'metrics', 'sync'] as const;

export const pillionSchema = z
  .strictObject({
    runtime: runtimeSchema,
    admin: adminSchema,
    app: appSchema.optional(),
  })
  .describe('pillion.yaml: one file for every role of the sidecar. Every section is optional.');

export type PillionConfig = z.output<typeof pillionSchema>;

export function loadPillionConfig(file: string, env: Env): Promise<LoadResult<PillionConfig>> {
  return loadConfigFile(file, { schema: pillionSchema, env, reservedSections: RESERVED_SECTIONS });
}

export function parsePillionConfig(text: string, file: string, env: Env): LoadResult<PillionConfig> {
  return parseConfigText(text, file, { schema: pillionSchema, env, reservedSections: RESERVED_SECTIONS });
}

let cachedJsonSchema: JsonSchema | undefined;
export function pillionJsonSchema(): JsonSchema {
  cachedJsonSchema ??= toJsonSchema(pillionSchema, {
    id: 'urn:pillion:config',
    title: 'Pillion sidecar configuration (pillion.yaml)',
  });
  return cachedJsonSchema;
}
