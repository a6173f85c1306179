// The one catalogue of Pillion's error codes. Codes are API: retry and breaker logic, tests and
// users' scripts match on them, never on messages. docs/errors.md is generated from this table.

export interface ErrorDefinition {
  /** What went wrong, in one sentence, for docs/errors.md. */
  readonly description: string;
  /** What a person usually does about it. */
  readonly fix: string;
}

export const ERROR_CATALOGUE = {
  // --- config: loading and validating pillion.yaml -------------------------------------------
  PILLION_ERR_CONFIG_READ: {
    description: 'The config file could not be read (missing, unreadable, or a directory).',
    fix: 'Check the path given with -c and the file permissions.',
  },
  PILLION_ERR_CONFIG_YAML_SYNTAX: {
    description: 'The file is not valid YAML.',
    fix: 'Fix the syntax at the position shown; indentation and unclosed quotes are the usual causes.',
  },
  PILLION_ERR_CONFIG_DUPLICATE_KEY: {
    description: 'A mapping holds the same key twice, so one value would silently win.',
    fix: 'Remove or merge one of the two entries.',
  },
  PILLION_ERR_CONFIG_UNKNOWN_KEY: {
    description: 'A key that the schema does not define; often a typo.',
    fix: 'Use the suggested key, or see docs/config.md for the keys of that section.',
  },
  PILLION_ERR_CONFIG_UNSUPPORTED_SECTION: {
    description:
      'A section of a role that is planned but not built yet; no version of Pillion has it so far.',
    fix: 'Remove the section for now; the README lists what works today and what is coming.',
  },
  PILLION_ERR_CONFIG_NOT_BUILT_YET: {
    description:
      'A key of a feature that is planned but not built yet (retries, route timeouts, circuit breaking, ...); no version of Pillion has it so far.',
    fix: 'Remove the key for now; the README lists what works today and what is coming.',
  },
  PILLION_ERR_CONFIG_MISSING_KEY: {
    description: 'A required key is absent.',
    fix: 'Add the key named in the message.',
  },
  PILLION_ERR_CONFIG_WRONG_TYPE: {
    description: 'A value has the wrong type (for example a string where a number is expected).',
    fix: 'Write a value of the expected type; quote strings that look like numbers.',
  },
  PILLION_ERR_CONFIG_OUT_OF_RANGE: {
    description: 'A number, list or string is outside its allowed range or length.',
    fix: 'Use a value within the bounds named in the message.',
  },
  PILLION_ERR_CONFIG_BAD_ENUM: {
    description: 'A value is not one of the allowed choices.',
    fix: 'Use one of the values listed in the message.',
  },
  PILLION_ERR_CONFIG_BAD_DURATION: {
    description: 'A duration is not a number with a unit.',
    fix: 'Write durations like "250ms", "2s", "1m", "1h" or "1m30s".',
  },
  PILLION_ERR_CONFIG_BAD_SIZE: {
    description: 'A size is not a number with a byte unit.',
    fix: 'Write sizes like "512B", "64KiB", "10MB" or "1GiB" (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000).',
  },
  PILLION_ERR_CONFIG_BAD_ADDRESS: {
    description: 'A listen or target address is not host:port.',
    fix: 'Write "127.0.0.1:8080", ":8080" (all interfaces), "[::1]:8080" or "localhost:8080"; ports are 0-65535.',
  },
  PILLION_ERR_CONFIG_BAD_VALUE: {
    description: 'A value has the right type but is not valid (for example a malformed path or pattern).',
    fix: 'Follow the format described in the message.',
  },
  PILLION_ERR_CONFIG_ENV_MISSING: {
    description: 'A ${VAR} reference names an environment variable that is not set and has no default.',
    fix: 'Set the variable, or give a default with ${VAR:-default}.',
  },
  PILLION_ERR_CONFIG_ENV_SYNTAX: {
    description: 'A ${...} reference is malformed (unclosed brace or invalid variable name).',
    fix: 'Write ${NAME} or ${NAME:-default}; use $${ for a literal ${.',
  },
  PILLION_ERR_CONFIG_ADMIN_NOT_LOOPBACK: {
    description: 'admin.listen is not a loopback address and remote access was not allowed.',
    fix: 'Bind the admin server to 127.0.0.1 or [::1], or set admin.allowRemote: true on purpose.',
  },
  PILLION_ERR_CONFIG_INVALID: {
    description: 'The config has one or more errors; each is reported with file:line:col and its own code.',
    fix: 'Fix the listed errors; `pillion validate -c FILE` checks a file without starting anything.',
  },

  // --- cli ------------------------------------------------------------------------------------
  PILLION_ERR_CLI_NOT_BUILT_YET: {
    description: 'A command that is planned but not built yet (`pillion inject`, `pillion top`, ...).',
    fix: 'See `pillion --help` for the commands that exist today.',
  },
  PILLION_ERR_CLI_BAD_OPTION: {
    description:
      'A command-line option has a value the command cannot use (a duration that is not one, ...).',
    fix: "See the command's --help for the form each option takes.",
  },

  // --- runtime: the process, modules, reload and shutdown ------------------------------------
  PILLION_ERR_RUNTIME_MODULE_START: {
    description: 'A module failed to start (for example its port is in use).',
    fix: 'Read the cause in the message; on reload, the previous config keeps running.',
  },
  PILLION_ERR_RUNTIME_RELOAD_REJECTED: {
    description: 'A reload was refused because the new config is invalid; the previous config keeps running.',
    fix: 'Fix the errors listed with the reload failure and save the file again (or POST /reload).',
  },
  PILLION_ERR_RUNTIME_SHUTTING_DOWN: {
    description: 'The operation was refused because the process is draining or stopping.',
    fix: 'Nothing; the process is on its way out.',
  },
  PILLION_ERR_RUNTIME_DRAIN_TIMEOUT: {
    description: 'A module had not finished draining when the drain deadline passed; it was stopped anyway.',
    fix: 'Raise runtime.drainTimeout if in-flight work regularly needs longer.',
  },
  PILLION_ERR_RUNTIME_STOP_TIMEOUT: {
    description:
      'A module had not stopped within runtime.stopTimeout after the drain; the process exited anyway, with exit code 1.',
    fix: 'The module named in the log was stuck (a file system that hangs, a peer that never answers); look at what it was writing to or waiting for.',
  },

  // --- admin server ---------------------------------------------------------------------------
  PILLION_ERR_ADMIN_LISTEN: {
    description: 'The admin server could not bind its address.',
    fix: 'Free the port or choose another admin.listen.',
  },
  PILLION_ERR_ADMIN_BAD_QUERY: {
    description: 'A query parameter of an admin endpoint has a value it does not take (GET /top?sort=...).',
    fix: 'Use one of the values the message names.',
  },
  PILLION_ERR_ADMIN_NOT_FOUND: {
    description: 'No admin endpoint at that path.',
    fix: 'See the admin API list in the README.',
  },
  PILLION_ERR_ADMIN_METHOD_NOT_ALLOWED: {
    description: 'The admin endpoint exists but not for that HTTP method.',
    fix: 'Use the method named in the Allow header.',
  },
  PILLION_ERR_ADMIN_BAD_HOST: {
    description:
      'An admin request named a Host other than loopback (a DNS-rebinding attempt, or a proxy in front) and was refused.',
    fix: 'Call the admin API as 127.0.0.1, [::1] or localhost; set admin.allowRemote: true to serve other names on purpose.',
  },
  PILLION_ERR_ADMIN_CROSS_ORIGIN: {
    description: 'A state-changing admin request came from a web page of another origin and was refused.',
    fix: 'Call the admin API from curl, a probe or a script, not from a browser page.',
  },

  // --- pod runner: manifests, lifecycle, isolation -------------------------------------------
  PILLION_ERR_POD_INVALID: {
    description: 'The pod manifest has one or more errors; each is listed with file:line:col.',
    fix: 'Fix the listed errors; the same YAML must also be valid for Kubernetes.',
  },
  PILLION_ERR_POD_NO_WORKLOAD: {
    description: 'The file holds no Pod, Job, Deployment, ReplicaSet, StatefulSet or DaemonSet to run.',
    fix: 'Add a Pod (or a workload, whose pod template is run once).',
  },
  PILLION_ERR_POD_MULTIPLE_WORKLOADS: {
    description: 'The file holds more than one Pod or workload.',
    fix: 'Put one workload per file; ConfigMaps and Secrets may sit beside it.',
  },
  PILLION_ERR_POD_UNSUPPORTED_KIND: {
    description: 'A document of a kind pillion pod does not run (a Service, say); it is skipped.',
    fix: 'Nothing, if the document is meant for a cluster; otherwise remove it.',
  },
  PILLION_ERR_POD_UNSUPPORTED_FIELD: {
    description: 'A Kubernetes field that means nothing for processes on one host; it is ignored.',
    fix: 'Nothing: the manifest still runs; the warning says why the field has no effect here.',
  },
  PILLION_ERR_POD_NO_COMMAND: {
    description: 'A container has no command: pillion runs processes, not images.',
    fix: "Give the container a command (and args) to run on this host, e.g. the image's entrypoint.",
  },
  PILLION_ERR_POD_DUPLICATE_NAME: {
    description: 'Two containers or two volumes share a name.',
    fix: 'Give each container and each volume a unique name.',
  },
  PILLION_ERR_POD_UNKNOWN_VOLUME: {
    description: 'A volumeMount names a volume the pod does not declare.',
    fix: 'Declare the volume under spec.volumes, or fix the name.',
  },
  PILLION_ERR_POD_MISSING_REF: {
    description: 'A ConfigMap, Secret or key that env, envFrom or a volume refers to is not in the file.',
    fix: 'Add the ConfigMap or Secret document (or the key), or mark the reference optional: true.',
  },
  PILLION_ERR_POD_UNSUPPORTED: {
    description:
      'A Kubernetes feature the pod runner does not support and that would change what runs (a persistent volume, a grpc probe, subPathExpr, ...).',
    fix: 'Use what the message suggests instead; the supported fields are listed in docs/pod.md.',
  },
  PILLION_ERR_POD_UNKNOWN_PORT: {
    description: "A probe or hook names a port (`port: http`) that the container's `ports` do not declare.",
    fix: "Declare it under the container's ports (name and containerPort), or use the port number.",
  },
  PILLION_ERR_POD_INIT_PROBE: {
    description:
      'A regular init container has probes or lifecycle hooks, which Kubernetes allows only on sidecars.',
    fix: 'Remove them, or make it a sidecar with restartPolicy: Always.',
  },
  PILLION_ERR_POD_NOT_FOUND: {
    description: 'No pod of that name in the state directory (the message names the directory it looked in).',
    fix: 'See `pillion pod list`; a pod started by another user, or with --state-dir or $PILLION_STATE_DIR, is in another state directory: pass the same --state-dir.',
  },
  PILLION_ERR_POD_ALREADY_RUNNING: {
    description: 'A pod of that name is already running.',
    fix: 'Stop it with `pillion pod down NAME`, or rename the pod.',
  },
  PILLION_ERR_POD_ISOLATION: {
    description: 'Volume mounts need a private mount namespace, which this host does not allow this user.',
    fix: 'Run pillion pod as root (or where unprivileged user namespaces are enabled), or remove volumeMounts.',
  },
  PILLION_ERR_POD_LIMITS_NOT_ENFORCED: {
    description: 'resources.limits could not be enforced (no writable cgroup); the pod runs without them.',
    fix: 'Run as root on a host with cgroups (v2, or v1) mounted writable.',
  },
  PILLION_ERR_POD_START: {
    description:
      'A container process could not be started (command not found, not executable, bad workingDir).',
    fix: 'Check the command and workingDir; the reason is in the container status.',
  },

  // --- state directory ---------------------------------------------------------------------------
  PILLION_ERR_STATE_DIR_EMPTY: {
    description:
      'The state directory (pod runs, log checkpoints and buffers) is set but empty: $PILLION_STATE_DIR="" or --state-dir "", which would mean the current directory.',
    fix: 'Unset PILLION_STATE_DIR to use the default ($XDG_STATE_HOME/pillion, else ~/.local/state/pillion), or give it a directory.',
  },

  // --- proxy: listeners, TLS, upstreams -----------------------------------------------------------
  PILLION_ERR_PROXY_LISTEN: {
    description: 'A proxy listener could not bind its address (in use, or not permitted).',
    fix: 'Choose a free port, or stop the process that holds it; ports below 1024 need privileges.',
  },
  PILLION_ERR_PROXY_UNKNOWN_UPSTREAM: {
    description: 'A route or TCP listener names an upstream that is not defined.',
    fix: 'Define the upstream under `upstreams:` of the same section, or use `app`.',
  },
  PILLION_ERR_PROXY_BAD_REQUEST: {
    description:
      'A client sent a request that HTTP/1.1 (RFC 9112) or HTTP/2 (RFC 9113) does not allow or that could be read two ways; it was answered 400 (or its stream reset) and not forwarded.',
    fix: "Fix the client. The access log's `error` field says which rule the request broke.",
  },
  PILLION_ERR_PROXY_UPSTREAM_CONNECT: {
    description:
      'The upstream refused the connection, could not be resolved, or did not accept it within the connect timeout; the client got 502 or 504.',
    fix: 'Check that the upstream is listening at the configured address, and its DNS name.',
  },
  PILLION_ERR_PROXY_UPSTREAM_TIMEOUT: {
    description:
      'The upstream accepted the request but did not answer within the response timeout; the client got 504.',
    fix: 'Raise `timeouts.upstreamResponse`, or find out why the upstream is slow.',
  },
  PILLION_ERR_PROXY_UPSTREAM_PROTOCOL: {
    description:
      'The upstream sent a response that is not valid HTTP, or closed the connection before a whole response; the client got 502.',
    fix: 'Check that the upstream speaks the protocol configured for it (`protocol: http1` or `h2`) and does not crash mid-response.',
  },
  PILLION_ERR_PROXY_HTTP2_PROTOCOL: {
    description:
      'An HTTP/2 client broke the protocol (a malformed frame, a frame on a closed stream, an oversized header block): the proxy sent GOAWAY with the error code, closed the connection and cancelled its streams, upstream exchanges included.',
    fix: 'Fix the client; h2spec or `nghttp -v` shows which frame it sends wrong.',
  },
  PILLION_ERR_PROXY_ENDPOINTS_FILE: {
    description:
      "An upstream's `endpointsFile` could not be read, is not YAML, or lists an endpoint that does not validate; the upstream keeps the last good list of endpoints, and pillion_proxy_endpoints_file_errors_total counts it.",
    fix: 'Fix the file (a list of "host:port" or { address, weight, labels }); it is read again as soon as it changes.',
  },
  PILLION_ERR_PROXY_TRANSFORM_TOO_LARGE: {
    description:
      'A route\'s transform buffers bodies up to its `maxBodyBytes`: a request body over it got 413, a response body over it 502; counted in pillion_proxy_transforms_total{result="too_large"}.',
    fix: "Raise the route's `transform.maxBodyBytes` (up to 64MiB), or send large bodies through a route without a transform.",
  },
  PILLION_ERR_PROXY_TRANSFORM_BAD_BODY: {
    description:
      "A body on a transformed route is not what the route's `from` says (JSON that does not parse, XML that is not well-formed or has a DOCTYPE): a request got 400, a response 502.",
    fix: "Send the format the route declares, or change the route's `transform.request.from` / `transform.response.from`.",
  },
  PILLION_ERR_PROXY_TRANSFORM_FAILED: {
    description:
      "A route's JSONata expression failed on a body (an error such as $number of a non-number), or its result cannot be written in the `to` format (a form field that is an object, XML without one root): the client got 502. The expression and the error are logged, never the body.",
    fix: 'Fix the expression (try it at try.jsonata.org on a sample body), or guard it (`$exists(x) ? ... : ...`).',
  },
  PILLION_ERR_PROXY_ACCESS_LOG: {
    description:
      'The access log file cannot be opened or written (its directory is missing and cannot be created, or is not writable).',
    fix: 'Choose an `accessLog.path` in a writable directory, or `stdout`.',
  },
  PILLION_ERR_POLICY_UNSUPPORTED_FIELD: {
    description:
      'An Istio security resource (PeerAuthentication, RequestAuthentication, AuthorizationPolicy) uses a field Pillion does not support, such as `targetRef` or `outputPayloadToHeader`; the resource is not loaded rather than loaded without it.',
    fix: 'Remove the field, or express it with pillion.yaml’s own keys (docs/security.md lists what each resource supports).',
  },
  PILLION_ERR_POLICY_UNKNOWN_KIND: {
    description:
      'A document in a `policies.istio` file is not a PeerAuthentication, RequestAuthentication or AuthorizationPolicy of security.istio.io/v1 or v1beta1.',
    fix: 'Keep other Kubernetes resources out of the files given to `policies.istio` (or `--istio`).',
  },
  PILLION_ERR_TLS_FILE: {
    description:
      'A certificate, key or CA file could not be read or parsed, or a key does not match its certificate.',
    fix: 'Check the paths and that the files are PEM; on a reload the previous certificate stays in use until the files are fixed.',
  },

  // --- identity: the local CA and workload certificates ------------------------------------------
  PILLION_ERR_CA_EXISTS: {
    description:
      '`pillion ca init` was pointed at a directory that already holds a CA; replacing it would invalidate every certificate it issued.',
    fix: 'Use another --dir, or pass --force to replace it on purpose.',
  },
  PILLION_ERR_CA_NOT_FOUND: {
    description: 'No CA in the directory given to `pillion ca` or to `identity.ca` (ca.crt is missing).',
    fix: 'Create one with `pillion ca init --dir DIR`, or fix the path.',
  },
  PILLION_ERR_CA_FILE: {
    description:
      'A CA file cannot be read or used: unreadable, not PEM, a key that does not match its certificate, or a key readable by other users.',
    fix: 'Fix the file named in the message; the CA key must be mode 0600 (`chmod 600 ca.key`).',
  },
  PILLION_ERR_CA_BAD_IDENTITY: {
    description:
      'An identity is not a SPIFFE ID this CA can sign: not `spiffe://<trust-domain>/<path>`, or of another trust domain.',
    fix: "Write the identity as `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` in the CA's trust domain (`pillion ca bundle` shows it).",
  },
  PILLION_ERR_IDENTITY_UNAVAILABLE: {
    description:
      'The workload certificate could not be issued, renewed or read; on a renewal the current certificate stays in use until it expires, and renewal is retried with back-off.',
    fix: 'Read the cause in the message: the CA directory or the certificate files named in `identity`.',
  },

  // --- inbound security: mutual TLS ---------------------------------------------------------------
  PILLION_ERR_MTLS_REFUSED: {
    description:
      'A client connection was refused by mutual TLS (`inbound.mtls`): no client certificate, one from another CA, expired or not yet valid, without client-auth key usage, plaintext on a STRICT port, or nothing sent to a PERMISSIVE one. Counted in `pillion_mtls_handshakes_total{result="refused",reason}` and logged at a rate limit (the first of each reason at once, then one line a minute).',
    fix: 'Give the client a certificate issued by the trust bundle (`pillion ca issue`), or set the port PERMISSIVE while clients migrate.',
  },
  PILLION_ERR_PROXY_UPSTREAM_IDENTITY: {
    description:
      "An upstream with mutual TLS presented a certificate whose SPIFFE identity is not one the upstream's `tls.subjectAltNames` expect; the connection was refused (502).",
    fix: 'Fix the expected identities, or the certificate of the service.',
  },

  // --- logs: the log role -----------------------------------------------------------------------
  PILLION_ERR_LOGS_UNKNOWN_SOURCE: {
    description:
      'A transform or sink names a source that is not defined under `logs.sources`, or a source feeds no sink.',
    fix: 'Use the name of a defined source, or remove `sources:` to take events from every source.',
  },
  PILLION_ERR_LOGS_DATA_DIR: {
    description:
      "The log role's data directory (checkpoints, disk buffers, dead letters) cannot be created or written.",
    fix: 'Set `logs.dataDir` to a writable directory, or fix its permissions.',
  },
  PILLION_ERR_LOGS_LISTEN: {
    description: 'An http or syslog source cannot listen on its address.',
    fix: 'Free the port or choose another address.',
  },
  PILLION_ERR_LOGS_CHECKPOINT: {
    description:
      'The checkpoint file is unreadable or corrupt; it is set aside and files are read by `startAt`.',
    fix: 'Nothing is needed; the old file is kept beside the new one (`.corrupt`) for inspection.',
  },
  PILLION_ERR_LOGS_BUFFER_CORRUPT: {
    description:
      "A record in a sink's disk buffer failed its checksum (a torn write or a damaged disk); it is skipped and counted.",
    fix: 'Check the disk; the rest of the buffer is still delivered.',
  },
  PILLION_ERR_LOGS_LOST: {
    description:
      'Input was lost for good and counted in `pillion_logs_bytes_lost_total` with its reason: a file truncated or rewritten before it was read, a file gone before its end, a line over `maxLineBytes`, UDP syslog while buffers were full.',
    fix: 'See docs/logs.md, "What can still be lost": rotate by rename rather than copytruncate, use a disk buffer where a sink can be down for long, raise `maxLineBytes`.',
  },
  PILLION_ERR_LOGS_UNREADABLE: {
    description:
      'A tail source cannot read a directory or file its patterns name (permissions, I/O); it is shown in `/readyz` and `pillion_logs_unreadable_paths` until it can be read.',
    fix: "Give pillion's user read access to the directory (and search access to its parents) and the files.",
  },
  PILLION_ERR_LOGS_DELIVERY: {
    description:
      'A sink could not deliver a batch; retryable failures are retried with back-off, others are dead-lettered.',
    fix: 'Check that the destination is up and accepts the events; dead letters are in `<dataDir>/dead-letter/<sink>.ndjson`.',
  },

  // --- sync: the config and secrets sync role ---------------------------------------------------
  PILLION_ERR_SYNC_UNKNOWN_SOURCE: {
    description: 'A destination names a source that is not defined under `sync.sources`.',
    fix: 'Use the name of a defined source.',
  },
  PILLION_ERR_SYNC_UNKNOWN_NOTIFIER: {
    description:
      'A destination names a notifier that is not defined under `sync.notify` (or `exec` without an exec section).',
    fix: 'Use the name of a defined notifier.',
  },
  PILLION_ERR_SYNC_SOURCE: {
    description:
      'A source could not be read (unreachable, a timeout, an answer that is not what its API documents, a value that does not parse); the last good files stay in place and it is retried with back-off.',
    fix: "Check that the server is up and the address right; `GET /sync` shows the source's state and last error.",
  },
  PILLION_ERR_SYNC_SOURCE_AUTH: {
    description:
      'A source refused pillion (401/403, a token or password that does not work, a lease or token that cannot be renewed); retried with back-off, never in a tight loop.',
    fix: 'Check the token, AppRole, Kubernetes role or etcd user and what its policy allows.',
  },
  PILLION_ERR_SYNC_STALE: {
    description:
      'A source has not been reached for `staleAfter`: its files are kept, but readiness fails and the source shows stale.',
    fix: 'Bring the source back; nothing is deleted meanwhile.',
  },
  PILLION_ERR_SYNC_RENDER: {
    description:
      'A destination could not be rendered: a template error, a key that is missing with no default, a value too large. The old file is kept; other destinations are not affected.',
    fix: 'The message names the key and the template line (never a value); add the key to the source or a `default` to the template.',
  },
  PILLION_ERR_SYNC_CHECK: {
    description:
      "A rendered file was refused by the destination's check command or JSON Schema, and not written.",
    fix: "Fix the value at its source; the check's output (or the schema path) is in the log.",
  },
  PILLION_ERR_SYNC_WRITE: {
    description:
      'A rendered file could not be written (its directory is missing or not writable, chown needs root).',
    fix: 'Make the directory writable by pillion, or drop uid/gid.',
  },
  PILLION_ERR_SYNC_NOTIFY: {
    description:
      'The app could not be told of a change (no such pid or process, the HTTP call or the command failed or timed out).',
    fix: 'Check the notifier: the pid file, process or container name, the URL, the command.',
  },
  PILLION_ERR_SYNC_ROLLED_BACK: {
    description:
      'The app turned unhealthy within `rollback.window` after a change: the previous files were put back, the app was told again, and the new version is held as failed until its source changes.',
    fix: 'Fix the value at its source; `GET /sync` shows the failed version and when it happened.',
  },
  PILLION_ERR_SYNC_EXEC: {
    description: 'The app run by exec mode could not be started, or exited; it is restarted with back-off.',
    fix: "Check exec.command; the app's own output says why it exited.",
  },
  PILLION_ERR_SYNC_ONCE: {
    description:
      '`pillion sync --once` could not render every destination: the message names each one that failed and why.',
    fix: 'Fix what the message names; the init container can then be started again.',
  },

  // --- inject: pillion inject, the admission webhook, iptables interception ------------------
  PILLION_ERR_INJECT_MANIFEST: {
    description:
      "A workload given to `pillion inject` breaks its kind's Kubernetes API schema, or has an apiVersion pillion does not inject.",
    fix: 'Fix the field at the position shown; the API server would refuse the manifest as it is.',
  },
  PILLION_ERR_INJECT_ANNOTATION: {
    description:
      "A pod's pillion.dev/ annotation is unknown or has a value pillion cannot use (a port that is not one, a quantity that is not one, ...).",
    fix: 'Use the suggested annotation or value; docs/kubernetes.md lists every annotation and what it takes.',
  },
  PILLION_ERR_INJECT_CONFIG: {
    description:
      'The sidecar config given to `pillion inject --config` is not valid: the injected pods would not start.',
    fix: 'Fix the errors listed with it (`pillion validate -c FILE` checks the same).',
  },
  PILLION_ERR_INJECT_IPTABLES: {
    description:
      'The interception rules could not be applied: iptables-restore is missing, or failed (the init container lacks NET_ADMIN, or the kernel has no nat table).',
    fix: 'Run the init container with NET_ADMIN and NET_RAW, in an image with the iptables package; `pillion iptables --print` shows the rules.',
  },
  PILLION_ERR_WEBHOOK_TLS: {
    description: "The webhook's certificate or key could not be read, or they do not match.",
    fix: 'Check --cert and --key (PEM files); `pillion ca issue --dns NAME.NAMESPACE.svc` or cert-manager makes them.',
  },

  // --- metrics: scraping the app, exposing and pushing metrics --------------------------------
  PILLION_ERR_METRICS_LISTEN: {
    description: 'The metrics listener could not bind its address.',
    fix: 'Free the port, choose another metrics.listen, or set it to null and read the admin /metrics.',
  },

  // --- app health -------------------------------------------------------------------------------
  PILLION_ERR_APP_UNHEALTHY: {
    description: "The app's health check is failing; the reason names the probe result.",
    fix: 'Check that the app listens on app.port and answers app.health.path.',
  },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The root of every error Pillion raises on purpose. */
export class PillionError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PillionError';
    this.code = code;
  }
}

/** Renders the catalogue as Markdown; docs/errors.md is this output and a test keeps it current. */
export function renderErrorDocs(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from src/lib/errors.ts by `npm run docs`. Do not edit by hand. -->',
    '',
    'Every error Pillion reports carries one of these stable codes. Scripts and policies should match',
    'on the code, never on the message.',
    '',
    '| code | what it means | what to do |',
    '|---|---|---|',
  ];
  for (const [code, def] of Object.entries(ERROR_CATALOGUE) as [ErrorCode, ErrorDefinition][]) {
    lines.push(`| \`${code}\` | ${escapeCell(def.description)} | ${escapeCell(def.fix)} |`);
  }
  return `${lines.join('\n')}\n`;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|');
}
