// `pillion inject -f FILE|-`: writes the manifests with pillion injected to stdout, as
// `istioctl kube-inject` does; what was injected or skipped, and why, goes to stderr.

import { resolve } from 'node:path';
import { type ConfigIssue, loadConfigFile, readText } from '../config/index.js';
import {
  defaultInjectorConfig,
  type InjectorConfig,
  injectorSchema,
  injectManifests,
} from '../inject/index.js';
import { loadPillionConfig } from '../roles.js';
import { renderIssues } from './print-issues.js';

export interface InjectOptions {
  filename: string;
  config?: string;
  injectorConfig?: string;
  legacySidecar?: boolean;
}

/** The sidecar's environment in the pod (the injected container sets these): what its config may read. */
const SIDECAR_ENV = { POD_NAME: 'pod', POD_NAMESPACE: 'default', NODE_NAME: 'node' };
const MAX_MANIFEST_BYTES = 1024 * 1024;

export async function injectCommand(opts: InjectOptions): Promise<number> {
  const color = process.stderr.isTTY === true && !process.env.NO_COLOR;
  const fail = (issues: ConfigIssue[], text?: string, file?: string) => {
    process.stderr.write(renderIssues(issues, text, color, file));
    return 1;
  };

  let config: InjectorConfig = defaultInjectorConfig();
  if (opts.injectorConfig) {
    const loaded = await loadConfigFile(opts.injectorConfig, { schema: injectorSchema, env: process.env });
    if (!loaded.ok) return fail(loaded.issues, loaded.text, opts.injectorConfig);
    config = loaded.config;
  }
  if (opts.legacySidecar) config = { ...config, sidecar: { ...config.sidecar, mode: 'legacy' } };

  let sidecarConfig: { text: string } | undefined;
  let adminPort: number | undefined;
  if (opts.config) {
    // Validated first: a config the sidecar would refuse must not reach a cluster.
    const loaded = await loadPillionConfig(opts.config, SIDECAR_ENV);
    if (!loaded.ok) {
      process.stderr.write(
        `pillion inject: PILLION_ERR_INJECT_CONFIG: ${opts.config} is not a valid pillion config; the injected sidecar would not start:\n`,
      );
      return fail(loaded.issues, loaded.text, opts.config);
    }
    sidecarConfig = { text: loaded.text };
    adminPort = loaded.config.admin.listen.port;
  }

  const file = opts.filename === '-' ? '(stdin)' : opts.filename;
  const text = opts.filename === '-' ? await readStdin() : await readText(resolve(opts.filename));
  if (typeof text !== 'string') return fail([{ ...text, file }]);
  const result = await injectManifests(text, file, { config, sidecarConfig, adminPort });
  if (!result.ok) return fail(result.errors, text, file);
  for (const r of result.report) process.stderr.write(`${r.kind.toLowerCase()}/${r.name}: ${r.outcome}\n`);
  if (result.report.length === 0)
    process.stderr.write(`${file}: no workload to inject; passed through as it is\n`);
  process.stdout.write(result.output);
  return 0;
}

async function readStdin(): Promise<string | ConfigIssue> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_MANIFEST_BYTES)
      return {
        file: '(stdin)',
        line: 1,
        col: 1,
        code: 'PILLION_ERR_CONFIG_READ',
        path: '(root)',
        message: 'more than 1 MiB of manifests; inject them in parts',
      };
    chunks.push(chunk);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    return {
      file: '(stdin)',
      line: 1,
      col: 1,
      code: 'PILLION_ERR_CONFIG_READ',
      path: '(root)',
      message: 'not valid UTF-8',
    };
  }
}
