#!/usr/bin/env node
// `npm start`: runs examples/legacy-orders/pod.yaml with `pillion pod up` in the foreground: the
// legacy orders app, an init container that renders its config, and a pillion native sidecar.
// The pod lives in the default state directory, so `pillion pod status` and `pillion pod logs`
// from another terminal find it without options; the banner names the directory anyway.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chooseStateDir } from '../../dist/lib/state-dir.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', '..', 'dist', 'bin', 'pillion.js');

/**
 * What the demo runs and what it tells the person who started it. Throws
 * PILLION_ERR_STATE_DIR_EMPTY for an empty PILLION_STATE_DIR, as every pod command does.
 */
export function demoPlan(env) {
  const { dir, source } = chooseStateDir(undefined, env);
  // Under sudo, the other terminal needs sudo too: the pod's state belongs to root.
  const sudo = env.SUDO_USER ? 'sudo ' : '';
  const pod = (args) => `${sudo}npx pillion pod ${args}`;
  const where =
    source === 'env'
      ? `${dir} (from $PILLION_STATE_DIR: the other terminal needs PILLION_STATE_DIR=${dir} too)`
      : `${dir} (the default state directory of ${sudo ? 'root' : 'this user'})`;
  const banner = `
  pillion pod up examples/legacy-orders/pod.yaml
    sync-config     init container: pillion sync --once renders the app's config.json
    make-cert       init container: a throwaway certificate for localhost
    pillion         native sidecar: HTTPS on 127.0.0.1:8443 in front of the app, request ids,
                    access log; admin API on 127.0.0.1:15000, watches the app's health
                    ships the app's log file, parsed, enriched and redacted, as JSON lines
                    outbound listener on 127.0.0.1:15001: the app's calls to the inventory,
                    balanced, retried, the failing replica ejected, both health-checked
    inventory       the inventory service, replica a on 127.0.0.1:9201
    inventory-flaky replica b on 127.0.0.1:9202, answering 503 to half its requests, in spells
    orders          the legacy app, unchanged: plain HTTP on 127.0.0.1:8080, text logs

  The pod's state and container logs: ${where}

  Try, from another terminal in this directory:
    curl -i localhost:15000/readyz           503 until the app answers its health check, then 200
    curl -d '{"item":"book","amount":20}' localhost:8080/orders     the app itself (10% discount from its rendered config)
    curl -ki -d '{"item":"book","amount":20}' https://localhost:8443/orders
                                             the same app over HTTPS: x-request-id, HSTS, an access log line
    curl -ki https://localhost:8443/internal/metrics                 404: the sidecar keeps internals private
    TOKEN=$(npm run -s demo:token -- --sub alice --roles admin)      a token from the demo issuer
    curl -k -H "Authorization: Bearer $TOKEN" https://localhost:8443/admin
                                             the app's admin page sees X-User-Id: alice, X-User-Roles: admin;
                                             403 without a token or the admin role, 401 with a bad token
    for i in $(seq 30); do curl -sko /dev/null -w '%{http_code} ' https://localhost:8443/orders; done
                                             a burst: 20 pass, then 429 with Retry-After
    curl localhost:15000/policies            the policies, the issuer's keys and the rate limit in force
    for i in $(seq 20); do curl -s localhost:8080/stock/book; echo; done
                                             the app asks the inventory through the sidecar, one call each,
                                             no retry code: every answer is 200 though replica b fails half
    curl localhost:15000/clusters            rq_retry (tries sent again), ejections, replica b ejected
                                             after 3 failures in a row, each replica's health checks
    curl localhost:15000/metrics             Prometheus metrics of the sidecar
    curl localhost:15020/metrics             ...and the app's JSON counters as Prometheus metrics, with the pod's labels
    curl -H 'accept: text/plain' 'localhost:15000/top?sort=mem'      the pod's processes: CPU, memory, threads, files
    edit orders-settings in examples/legacy-orders/pod.yaml, "discountPercent": 25
                                             the app has the new discount within a second (SIGHUP)
    ... then "discountPercent": 150          the app stops serving; the sidecar puts the last config back
    curl localhost:15000/sync                the sidecar's sources and files: versions, the failed one
    curl -d 'call ann@example.com' localhost:8080/orders            a bad order: the app logs the payload...
    tail -f /tmp/pillion-demo/logs/orders.ndjson                     ...and the sidecar ships it with the e-mail redacted,
                                             with level, timestamp, host, pod and namespace as fields
    ${pod('status')}                     every pod: READY, STATUS, RESTARTS, AGE
    ${pod('status legacy-orders')}       its containers, readiness, restarts
    ${pod('describe legacy-orders')}     states, probes, mounts and events, as kubectl describe
    ${pod('logs legacy-orders pillion')}   the sidecar's logs, from the CRI log files
    ${pod('top legacy-orders')}          CPU and memory of each container, as kubectl top pod
  Ctrl-C stops the pod in order: the app's preStop, the app, then the sidecar.
`;
  return { stateDir: dir, args: [cli, 'pod', 'up', join(here, 'pod.yaml')], banner };
}

async function main() {
  let plan;
  try {
    plan = demoPlan(process.env);
  } catch (err) {
    console.error(`${err.code ?? ''} ${err.message}`.trim());
    process.exit(1);
  }
  for (const port of [8080, 8443, 15000, 15001, 15020, 9201, 9202]) {
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
  console.log(plan.banner);
  // No --state-dir: the pod goes where every pod command looks by default.
  const child = spawn(process.execPath, plan.args, { stdio: 'inherit' });
  // Ctrl-C reaches the child through the terminal's process group; a SIGTERM to this script is passed on.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

function isFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
