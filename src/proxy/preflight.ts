// What `pillion validate` checks of the proxy sections beyond the schema, as `run` would find it
// at start, without binding a port: each TLS listener's files load as the listener loads them
// (exist, parse, keys match), upstream CA bundles parse, JWKS files hold public keys, access-log
// directories are writable.

import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import pino from 'pino';
import { certificateFileProblem, type PreflightIssue, writableDirProblem } from '../lib/preflight.js';
import type { InboundConfig, OutboundConfig } from './config.js';
import { parseJwks } from './filters/jwks-document.js';
import { CertStore, tlsParameters } from './tls/index.js';

const silent = pino({ level: 'silent' });

export async function proxyPreflight(
  section: 'inbound' | 'outbound',
  cfg: InboundConfig | OutboundConfig,
): Promise<PreflightIssue[]> {
  const issues: PreflightIssue[] = [];
  const listeners = 'listeners' in cfg ? cfg.listeners : [];
  for (const [i, l] of listeners.entries()) {
    if (!l.tls) continue;
    const tls = l.tls;
    try {
      const store = await CertStore.load(
        {
          certificates: tls.certificates,
          ...tlsParameters(tls),
          clientCertificate: tls.clientCertificate,
          alpn: [],
        },
        { logger: silent },
      );
      store.close();
    } catch (err) {
      // The store names the file it could not use; point at the key that names it.
      const file = (err as { file?: unknown }).file;
      const at: (string | number)[] = [section, 'listeners', i, 'tls'];
      const c = tls.certificates.findIndex((x) => x.key === file || x.cert === file);
      if (tls.clientCertificate?.ca === file) at.push('clientCertificate', 'ca');
      else if (c >= 0) {
        const { cert, key } = tls.certificates[c]!;
        // One file may hold both; then the message says which part failed.
        const isKey = key === file && (cert !== file || /^(tls key|key) /.test((err as Error).message));
        at.push('certificates', c, isKey ? 'key' : 'cert');
      }
      issues.push({ path: at, code: 'PILLION_ERR_TLS_FILE', message: (err as Error).message });
    }
  }
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    if (!u.tls?.ca) continue;
    const problem = await certificateFileProblem(u.tls.ca);
    if (problem)
      issues.push({
        path: [section, 'upstreams', name, 'tls', 'ca'],
        code: 'PILLION_ERR_TLS_FILE',
        message: `upstream ${name}: CA bundle: ${problem}`,
      });
  }
  if ('jwt' in cfg && cfg.jwt)
    for (const [i, issuer] of cfg.jwt.issuers.entries()) {
      if (issuer.jwksFile === undefined) continue;
      try {
        parseJwks(await readFile(issuer.jwksFile, 'utf8'), issuer.jwksFile);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        issues.push({
          path: [section, 'jwt', 'issuers', i, 'jwksFile'],
          code: 'PILLION_ERR_CONFIG_BAD_VALUE',
          message: e.code !== undefined ? `${issuer.jwksFile}: cannot read (${e.code})` : e.message,
        });
      }
    }
  const log = cfg.accessLog;
  if (log && log.path !== 'stdout') {
    const problem = await writableDirProblem(dirname(log.path));
    if (problem)
      issues.push({
        path: [section, 'accessLog', 'path'],
        code: 'PILLION_ERR_PROXY_ACCESS_LOG',
        message: `access log ${log.path}: ${problem}`,
      });
  }
  return issues;
}
