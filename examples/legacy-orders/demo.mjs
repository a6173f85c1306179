#!/usr/bin/env node
// `npm start`: runs examples/legacy-orders/pod.yaml with `pillion pod up` in the foreground: the
// legacy orders app, an init container that renders its config, and a pillion native sidecar.

import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', '..', 'dist', 'cli', 'main.js');
const stateDir = process.env.PILLION_STATE_DIR ?? mkdtempSync(join(tmpdir(), 'pillion-demo-'));

for (const port of [8080, 8443, 15000]) {
  if (!(await isFree(port))) {
    console.error(`port ${port} on 127.0.0.1 is in use; stop whatever holds it and run npm start again`);
    process.exit(1);
  }
}
if (process.getuid?.() !== 0) {
  console.error(
    'The demo pod mounts volumes into each container, which needs root (a private mount namespace).',
  );
  console.error('Run `sudo npm start`, or `npm run demo:local` for the same pair without a pod.');
  process.exit(1);
}

console.log(`
  pillion pod up examples/legacy-orders/pod.yaml
    prepare-config  init container: renders the app's config.json into a shared volume
    make-cert       init container: a throwaway certificate for localhost
    pillion         native sidecar: HTTPS on 127.0.0.1:8443 in front of the app, request ids,
                    access log; admin API on 127.0.0.1:15000, watches the app's health
                    ships the app's log file, parsed, enriched and redacted, as JSON lines
    orders          the legacy app, unchanged: plain HTTP on 127.0.0.1:8080, text logs

  Try, from another terminal (add --state-dir ${stateDir} to pod commands):
    curl -i localhost:15000/readyz           503 until the app answers its health check, then 200
    curl -d '{"item":"book","amount":20}' localhost:8080/orders     the app itself (10% discount from its rendered config)
    curl -ki -d '{"item":"book","amount":20}' https://localhost:8443/orders
                                             the same app over HTTPS: x-request-id, HSTS, an access log line
    curl -ki https://localhost:8443/internal/metrics                 404: the sidecar keeps internals private
    curl localhost:15000/metrics             Prometheus metrics of the sidecar
    curl -d 'call ann@example.com' localhost:8080/orders            a bad order: the app logs the payload...
    tail -f /tmp/pillion-demo/logs/orders.ndjson                     ...and the sidecar ships it with the e-mail redacted,
                                             with level, timestamp, host, pod and namespace as fields
    pillion pod status legacy-orders         containers, readiness, restarts (npx pillion ... from the repo)
    pillion pod logs legacy-orders pillion   the sidecar's logs, from the CRI log files
  Ctrl-C stops the pod in order: the app's preStop, the app, then the sidecar.
`);

const child = spawn(process.execPath, [cli, 'pod', 'up', join(here, 'pod.yaml'), '--state-dir', stateDir], {
  stdio: 'inherit',
});
// Ctrl-C reaches the child through the terminal's process group; a SIGTERM to this script is passed on.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

function isFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
