// Tests' way to run the whole process in-process: a config file loaded and validated as
// `pillion run` does, every role from the composition root, file watching off. Not loaded by the
// product (the module-load test checks).

import assert from 'node:assert/strict';
import { pino } from 'pino';
import { formatIssue } from '../config/index.js';
import { loadPillionConfig, pillionJsonSchemaOf, roleModules } from '../roles.js';
import { Runtime } from './runtime.js';

/** Loads `file` (failing the test with its issues if it is invalid) and starts a runtime on it. */
export async function startRuntimeOn(file: string): Promise<Runtime> {
  const loaded = await loadPillionConfig(file, {});
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
  const runtime = new Runtime({
    initial: { config: loaded.config, raw: loaded.raw, text: loaded.text },
    configFile: file,
    env: {},
    logger: pino({ level: 'silent' }),
    loadConfig: loadPillionConfig,
    jsonSchema: pillionJsonSchemaOf,
    modules: roleModules(),
    watch: false,
  });
  await runtime.start();
  return runtime;
}
