#!/usr/bin/env node
// Runs every compiled test file under dist/ with Node's test runner. Files are listed explicitly
// because Node 20's runner does not expand globs.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? find(p) : e.name.endsWith('.test.js') ? [p] : [];
  });
}

const filter = process.argv.slice(2);
const files = find('dist')
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/ (did the build run?)');
  process.exit(1);
}
// The log role's tests run against a real ClickHouse and syslog-ng; install them from Debian's
// packages when missing (nothing is installed when both are present).
if (files.some((f) => f.includes(`${join('dist', 'logs')}`))) {
  const peers = spawnSync('bash', [join('scripts', 'install-peers.sh'), 'clickhouse-server', 'syslog-ng'], {
    stdio: 'inherit',
  });
  if (peers.status !== 0) {
    console.error('scripts/install-peers.sh could not provide clickhouse-server and syslog-ng (see above)');
    process.exit(1);
  }
}
// The Kubernetes tests build deploy/ with kubectl kustomize and, as root, intercept traffic in a
// network namespace with iptables and iproute2.
if (files.some((f) => f.includes(`${join('dist', 'inject')}`) || f.endsWith('deploy.test.js'))) {
  const wanted = ['kubectl', ...(process.getuid?.() === 0 ? ['iptables', 'ip'] : [])];
  const peers = spawnSync('bash', [join('scripts', 'install-peers.sh'), ...wanted], { stdio: 'inherit' });
  if (peers.status !== 0) {
    console.error(`scripts/install-peers.sh could not provide ${wanted.join(', ')} (see above)`);
    process.exit(1);
  }
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=120000', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
