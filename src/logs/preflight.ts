// What `pillion validate` checks of the logs section beyond the schema, as `run` would meet it,
// without reading or shipping anything: the data directory and each file sink's directory can be
// written, a syslog sink's TLS files exist, parse and match.

import { dirname, join } from 'node:path';
import {
  certificateFileProblem,
  keyPairProblem,
  type PreflightIssue,
  writableDirProblem,
} from '../lib/preflight.js';
import { defaultStateDir } from '../lib/state-dir.js';
import type { LogsConfig } from './config.js';

export async function logsPreflight(
  cfg: LogsConfig,
  env: Readonly<Record<string, string | undefined>>,
): Promise<PreflightIssue[]> {
  const issues: PreflightIssue[] = [];
  const dataDir = cfg.dataDir ?? join(defaultStateDir(env), 'logs');
  const dataProblem = await writableDirProblem(dataDir);
  if (dataProblem)
    issues.push({
      path: cfg.dataDir === undefined ? ['logs'] : ['logs', 'dataDir'],
      code: 'PILLION_ERR_LOGS_DATA_DIR',
      message: `data directory ${dataDir}: ${dataProblem}`,
      hint: cfg.dataDir === undefined ? 'set logs.dataDir, or PILLION_STATE_DIR' : undefined,
    });
  for (const [name, sink] of Object.entries(cfg.sinks)) {
    if (sink.type === 'file') {
      const problem = await writableDirProblem(dirname(sink.path));
      if (problem)
        issues.push({
          path: ['logs', 'sinks', name, 'path'],
          code: 'PILLION_ERR_LOGS_DELIVERY',
          message: `file sink ${name} cannot write ${sink.path}: ${problem}`,
        });
    }
    if (sink.type === 'syslog' && sink.tls) {
      const at = ['logs', 'sinks', name, 'tls'];
      const { caFile, certFile, keyFile } = sink.tls;
      const ca = caFile === undefined ? undefined : await certificateFileProblem(caFile);
      if (ca) issues.push({ path: [...at, 'caFile'], code: 'PILLION_ERR_TLS_FILE', message: ca });
      if (certFile !== undefined && keyFile !== undefined) {
        const pair = await keyPairProblem(certFile, keyFile);
        if (pair)
          issues.push({
            path: [...at, pair.file === 'cert' ? 'certFile' : 'keyFile'],
            code: 'PILLION_ERR_TLS_FILE',
            message: pair.message,
          });
      }
    }
  }
  return issues;
}
