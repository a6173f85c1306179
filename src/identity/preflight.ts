// What `pillion validate` checks of the identity section, as `run` would find it at start: the
// CA opens (certificate, key that matches it and only its owner reads), or the files parse and
// the key matches the certificate.

import { certificateFileProblem, keyPairProblem, type PreflightIssue } from '../lib/preflight.js';
import { PillionError } from '../lib/errors.js';
import type { IdentityConfig } from './config.js';

export async function identityPreflight(cfg: IdentityConfig): Promise<PreflightIssue[]> {
  const issues: PreflightIssue[] = [];
  if (cfg.ca) {
    const { LocalCa } = await import('./local-ca.js');
    try {
      await LocalCa.open(cfg.ca.dir);
    } catch (err) {
      if (!(err instanceof PillionError)) throw err;
      issues.push({ path: ['identity', 'ca', 'dir'], code: err.code, message: err.message });
    }
  }
  if (cfg.files) {
    const f = cfg.files;
    const pair = await keyPairProblem(f.cert, f.key);
    if (pair)
      issues.push({
        path: ['identity', 'files', pair.file],
        code: 'PILLION_ERR_IDENTITY_UNAVAILABLE',
        message: pair.message,
      });
    const bundle = await certificateFileProblem(f.bundle);
    if (bundle)
      issues.push({
        path: ['identity', 'files', 'bundle'],
        code: 'PILLION_ERR_IDENTITY_UNAVAILABLE',
        message: bundle,
      });
  }
  return issues;
}
