// The JSON Schema of a config schema, for editors (yaml-language-server), docs and /config.
// Generated from the zod schema, in its input form: durations and sizes as the strings users write.

import { z } from 'zod';

export type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  'x-pillion-secret'?: boolean;
  [key: string]: unknown;
};

export function toJsonSchema(schema: z.ZodType, meta: { id: string; title: string }): JsonSchema {
  const out = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    target: 'draft-07',
  }) as JsonSchema;
  return { $schema: out.$schema, $id: meta.id, title: meta.title, ...out };
}
