// Schema of the `sync:` section: named sources (where values come from), named destinations (the
// files rendered from them), named notifiers (how the app is told), an optional exec supervisor,
// and the rollback window. Only zod here: the role's heavy parts load when the section is used.

import { z } from 'zod';
import { addPillionIssue, componentName, duration, secret, size } from '../config/index.js';
import { didYouMean } from '../lib/did-you-mean.js';

const SIGNALS = [
  'SIGHUP',
  'SIGUSR1',
  'SIGUSR2',
  'SIGINT',
  'SIGTERM',
  'SIGQUIT',
  'SIGWINCH',
  'SIGCONT',
] as const;
export type SignalName = (typeof SIGNALS)[number];

/** A file mode: octal digits, quoted ("0640") or not (0640, which YAML reads as the number 640). */
function fileMode() {
  return z
    .unknown()
    .transform((input, ctx): number => {
      const text = typeof input === 'number' && Number.isInteger(input) ? String(input) : input;
      if (typeof text !== 'string' || !/^0?[0-7]{3,4}$|^0o[0-7]{3,4}$/.test(text)) {
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `${JSON.stringify(input)} is not a file mode`,
          'write the octal digits, like "0644" or "0400"',
        );
        return z.NEVER;
      }
      const mode = Number.parseInt(text.replace(/^0o/, ''), 8);
      if (mode > 0o7777) {
        addPillionIssue(ctx, 'PILLION_ERR_CONFIG_OUT_OF_RANGE', `${text} is above 07777`);
        return z.NEVER;
      }
      return mode;
    })
    .meta({ type: 'string', pattern: '^0?[0-7]{3,4}$', format: 'file-mode' });
}

const tlsSchema = z
  .strictObject({
    caFile: z
      .string()
      .min(1)
      .optional()
      .describe("CA bundle (PEM) that verifies the server's certificate; the system CAs when omitted."),
    certFile: z.string().min(1).optional().describe('Client certificate (PEM), for mutual TLS.'),
    keyFile: z.string().min(1).optional().describe('Client key (PEM).'),
    serverName: z.string().min(1).optional().describe('The name to verify (the URL host when omitted).'),
  })
  .superRefine((t, ctx) => {
    if ((t.certFile === undefined) !== (t.keyFile === undefined))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'certFile and keyFile go together',
        'give both, or neither',
        [t.certFile === undefined ? 'certFile' : 'keyFile'],
      );
  })
  .describe('TLS to the server: https URLs use it; a CA of your own, client certificates.');

export type SyncTlsConfig = z.output<typeof tlsSchema>;

const backoffSchema = z
  .strictObject({
    min: duration({ min: '10ms', max: '1h' }).prefault('1s').describe('First retry after a failure.'),
    max: duration({ min: '10ms', max: '1h' })
      .prefault('1m')
      .describe('Retries double their delay (with jitter) up to this.'),
  })
  .prefault({})
  .describe("This source's own retry back-off after a failure; no source waits on another's.");

const parseSchema = z
  .enum(['raw', 'json', 'yaml'])
  .default('raw')
  .describe(
    'How each value is read: `raw` text, or `json`/`yaml` parsed into a structure templates can index. A value that does not parse is an error of the source (the last good value is kept).',
  );

/** Fields every source has. */
const common = {
  parse: parseSchema,
  staleAfter: duration({ min: '1s', max: '720h' })
    .prefault('5m')
    .describe(
      'A source that has not been reached for this long is stale: readiness fails and `pillion_sync_source_stale` is 1. Its last files stay in place.',
    ),
  backoff: backoffSchema,
};

const fileSource = z
  .strictObject({
    type: z.literal('file'),
    path: z.string().min(1).describe('The file to read; its content is the value.'),
    poll: duration({ min: '10ms', max: '1h' })
      .prefault('1s')
      .describe(
        'How often the file is checked when no inotify event came (network file systems, a full watch table).',
      ),
    ...common,
  })
  .describe('A file on this host, watched (inotify on its directory, polling as a fallback).');

const directorySource = z
  .strictObject({
    type: z.literal('directory'),
    path: z
      .string()
      .min(1)
      .describe('The directory; each regular file in it is a key, its content the value.'),
    poll: duration({ min: '10ms', max: '1h' })
      .prefault('1s')
      .describe('How often the directory is listed when no inotify event came.'),
    maxFiles: z.number().int().min(1).max(10_000).default(1000).describe('More files than this is an error.'),
    ...common,
  })
  .describe(
    'The files of a directory (not recursive; names starting with "." are left out, so a Kubernetes volume\'s `..data` is not read twice).',
  );

const httpSource = z
  .strictObject({
    type: z.literal('http'),
    url: z.url({ protocol: /^https?$/ }).describe('The URL to GET; its body is the value.'),
    headers: z
      .record(z.string(), secret())
      .default({})
      .describe('Extra request headers (values are secrets).'),
    tokenFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A file whose content is sent as `Authorization: Bearer <token>`; read again at every request.',
      ),
    tls: tlsSchema.optional(),
    interval: duration({ min: '100ms', max: '24h' }).prefault('30s').describe('Time between polls.'),
    timeout: duration({ min: '10ms', max: '10m' })
      .prefault('10s')
      .describe('A request that takes longer fails.'),
    longPoll: z
      .strictObject({
        wait: duration({ min: '1s', max: '10m' })
          .prefault('5m')
          .describe('How long the server may hold the request (sent as `Prefer: wait=<seconds>`, RFC 7240).'),
      })
      .optional()
      .describe(
        'Long-poll: each request carries `If-None-Match` and `Prefer: wait`, and a server that supports it answers when the value changes (200) or the wait ends (304); the next request follows at once.',
      ),
    ...common,
  })
  .describe('An HTTP(S) URL, polled with `ETag`/`If-None-Match` (a 304 costs no render), or long-polled.');

const etcdSource = z
  .strictObject({
    type: z.literal('etcd'),
    endpoints: z
      .array(z.url({ protocol: /^https?$/ }))
      .min(1)
      .describe("etcd's client URLs; the next is tried when one fails."),
    key: z.string().min(1).describe('The key, or with `prefix: true` the prefix of the keys.'),
    prefix: z
      .boolean()
      .default(false)
      .describe('Every key under `key`; templates see each by its name without the prefix.'),
    tls: tlsSchema.optional(),
    username: z.string().min(1).optional().describe('etcd user (auth enabled).'),
    passwordFile: z.string().min(1).optional().describe("A file holding the user's password."),
    timeout: duration({ min: '10ms', max: '10m' })
      .prefault('5s')
      .describe('A request (not the watch) that takes longer fails.'),
    ...common,
  })
  .superRefine((s, ctx) => {
    if ((s.username === undefined) !== (s.passwordFile === undefined))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'username and passwordFile go together',
        undefined,
        [s.username === undefined ? 'username' : 'passwordFile'],
      );
  })
  .describe(
    'etcd v3 (its JSON gateway over HTTP): read once, then watched from the next revision; after a disconnect the watch resumes from the last revision seen, so no change is missed or applied twice.',
  );

const consulSource = z
  .strictObject({
    type: z.literal('consul'),
    address: z.url({ protocol: /^https?$/ }).describe("Consul's HTTP address, e.g. http://127.0.0.1:8500."),
    key: z.string().min(1).describe('The KV key, or with `recurse: true` the prefix.'),
    recurse: z
      .boolean()
      .default(false)
      .describe('Every key under `key`; templates see each by its name without the prefix.'),
    tokenFile: z
      .string()
      .min(1)
      .optional()
      .describe('A file holding the ACL token (sent as X-Consul-Token, read at every request).'),
    datacenter: z
      .string()
      .min(1)
      .optional()
      .describe("The datacenter to query (the agent's own when omitted)."),
    tls: tlsSchema.optional(),
    wait: duration({ min: '1s', max: '10m' })
      .prefault('5m')
      .describe(
        'How long each blocking query may wait for a change (Consul caps it at 10m and adds up to wait/16).',
      ),
    timeout: duration({ min: '10ms', max: '10m' })
      .prefault('10s')
      .describe('Added to `wait` (and its jitter) to bound each request.'),
    minInterval: duration({ min: '0s', max: '1m' })
      .prefault('100ms')
      .describe(
        'The least time between two queries, so a server that answers at once cannot make a busy loop.',
      ),
    ...common,
  })
  .describe('Consul KV with blocking queries (`?index=` and `X-Consul-Index`, reset as Consul documents).');
const vaultAuthSchema = z
  .discriminatedUnion('method', [
    z
      .strictObject({
        method: z.literal('token'),
        tokenFile: z
          .string()
          .min(1)
          .describe('A file holding the token (read again when Vault refuses it or its renewal).'),
      })
      .describe('A token from a file (written by another agent, or by hand).'),
    z
      .strictObject({
        method: z.literal('approle'),
        mount: z.string().min(1).default('approle').describe('Where the AppRole auth method is mounted.'),
        roleId: z.string().min(1).optional().describe('The role id (not a secret).'),
        roleIdFile: z.string().min(1).optional().describe('A file holding the role id.'),
        secretIdFile: z
          .string()
          .min(1)
          .optional()
          .describe('A file holding the secret id (omit for roles with bind_secret_id off).'),
      })
      .superRefine((a, ctx) => {
        if ((a.roleId === undefined) === (a.roleIdFile === undefined))
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_MISSING_KEY',
            'give one of roleId and roleIdFile',
            undefined,
            ['roleId'],
          );
      })
      .describe('AppRole: a role id and a secret id, exchanged for a token at `auth/<mount>/login`.'),
    z
      .strictObject({
        method: z.literal('kubernetes'),
        mount: z
          .string()
          .min(1)
          .default('kubernetes')
          .describe('Where the Kubernetes auth method is mounted.'),
        role: z.string().min(1).describe('The Vault role to log in as.'),
        jwtFile: z
          .string()
          .min(1)
          .default('/var/run/secrets/kubernetes.io/serviceaccount/token')
          .describe("The service account's JWT (read again at every login: the kubelet rotates it)."),
      })
      .describe("Kubernetes: the pod's service-account token exchanged for a Vault token."),
  ])
  .describe('How pillion gets its Vault token.');

export type VaultAuthConfig = z.output<typeof vaultAuthSchema>;

const vaultSource = z
  .strictObject({
    type: z.literal('vault'),
    address: z.url({ protocol: /^https?$/ }).describe("Vault's address, e.g. https://vault:8200."),
    namespace: z.string().min(1).optional().describe('Vault Enterprise namespace (X-Vault-Namespace).'),
    auth: vaultAuthSchema,
    tls: tlsSchema.optional(),
    kv: z
      .strictObject({
        mount: z.string().min(1).default('secret').describe('Where the KV v2 engine is mounted.'),
        path: z.string().min(1).describe('The secret, under the mount.'),
        interval: duration({ min: '1s', max: '24h' })
          .prefault('1m')
          .describe(
            'How often the secret is read; a new `metadata.version` is a change, the same one is not.',
          ),
      })
      .optional()
      .describe('A KV v2 secret: its data fields are the keys.'),
    secret: z
      .strictObject({
        path: z.string().min(1).describe('The path of a dynamic secret, e.g. database/creds/app.'),
        method: z.enum(['GET', 'POST', 'PUT']).default('GET').describe('Some engines issue on POST/PUT.'),
        body: z
          .record(z.string(), z.unknown())
          .optional()
          .describe('A JSON body for POST/PUT (pki/issue parameters).'),
      })
      .optional()
      .describe(
        'A dynamic secret with a lease: its data fields are the keys; renewed at `renewFraction` of its lease, fetched anew when renewal is refused or the lease cannot be extended.',
      ),
    renewFraction: z
      .number()
      .min(0.1)
      .max(0.95)
      .default(0.5)
      .describe(
        'Renew the token and the lease when this fraction of their TTL has passed (consul-template: ½).',
      ),
    timeout: duration({ min: '10ms', max: '10m' })
      .prefault('10s')
      .describe('A request that takes longer fails.'),
    ...common,
  })
  .superRefine((s, ctx) => {
    if ((s.kv === undefined) === (s.secret === undefined))
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_MISSING_KEY', 'give one of kv and secret', undefined, ['kv']);
  })
  .describe(
    'HashiCorp Vault: a KV v2 secret or a dynamic secret with a lease; auth by token file, AppRole or Kubernetes; the token renewed, and obtained again when renewal is refused. Files from it are secrets (0400) by default.',
  );

const envSource = z
  .strictObject({
    type: z.literal('env'),
    names: z.array(z.string().min(1)).optional().describe('Environment variables to read; each is a key.'),
    prefix: z
      .string()
      .min(1)
      .optional()
      .describe('Every variable starting with this; the key is the name without the prefix.'),
    parse: parseSchema,
  })
  .superRefine((s, ctx) => {
    if (s.names === undefined && s.prefix === undefined)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_MISSING_KEY', 'give names or prefix', undefined, ['names']);
  })
  .describe("pillion's environment, read once at start (and at each reload).");

const literalSource = z
  .strictObject({
    type: z.literal('literal'),
    value: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .describe('A text, or a mapping whose keys are the keys.'),
  })
  .describe('A value written in this file.');

const sourceSchema = z.discriminatedUnion('type', [
  fileSource,
  directorySource,
  httpSource,
  etcdSource,
  consulSource,
  vaultSource,
  envSource,
  literalSource,
]);

export type SourceConfig = z.output<typeof sourceSchema>;
export type FileSourceConfig = z.output<typeof fileSource>;
export type DirectorySourceConfig = z.output<typeof directorySource>;
export type HttpSourceConfig = z.output<typeof httpSource>;
export type EtcdSourceConfig = z.output<typeof etcdSource>;
export type ConsulSourceConfig = z.output<typeof consulSource>;
export type VaultSourceConfig = z.output<typeof vaultSource>;
export type EnvSourceConfig = z.output<typeof envSource>;
export type LiteralSourceConfig = z.output<typeof literalSource>;

// --- what a file is made of -----------------------------------------------------------------------

const waitSchema = z
  .strictObject({
    min: duration({ min: '0s', max: '1h' })
      .prefault('0s')
      .describe('Render only after no change came for this long (a burst of changes renders once).'),
    max: duration({ min: '0s', max: '1h' })
      .optional()
      .describe('Render at the latest this long after the first change of a burst; 4 × min when omitted.'),
  })
  .describe("Debounce, as consul-template's `wait`.");

export type WaitConfig = z.output<typeof waitSchema>;

const checkSchema = z
  .strictObject({
    command: z
      .array(z.string())
      .min(1)
      .optional()
      .describe(
        'Run with the staged file (`{{src}}` in an argument is replaced by its path; appended when absent; for a directory, the staged directory); exit 0 lets it be written.',
      ),
    timeout: duration({ min: '10ms', max: '10m' })
      .prefault('10s')
      .describe('A check command that runs longer fails.'),
    schema: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        'A JSON Schema (draft-07, or 2019-09 or 2020-12 when its `$schema` names them) the file must validate against, parsed as YAML when `format: yaml` or the path ends in .yaml or .yml, as JSON otherwise; compiled when the config loads.',
      ),
    schemaFile: z
      .string()
      .min(1)
      .optional()
      .describe('The JSON Schema in a file (JSON or YAML), read when the config loads.'),
  })
  .superRefine((c, ctx) => {
    if (c.command === undefined && c.schema === undefined && c.schemaFile === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'give command, schema or schemaFile',
        undefined,
        ['command'],
      );
    if (c.schema !== undefined && c.schemaFile !== undefined)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'give schema or schemaFile, not both', undefined, [
        'schemaFile',
      ]);
  })
  .describe(
    "Must pass before the file is written (confd's check_cmd, or a JSON Schema); a refused file keeps the old one. With both, the schema is checked first.",
  );

export type CheckConfig = z.output<typeof checkSchema>;

/** What one file is rendered from. */
const contentFields = {
  source: componentName()
    .optional()
    .describe('The source whose value is written (with `key` for one of its keys).'),
  key: z
    .string()
    .optional()
    .describe("A key of the source; the source's only value (or all its keys) when omitted."),
  format: z
    .enum(['raw', 'json', 'yaml'])
    .default('raw')
    .describe('With `source`: write the value as it is, or re-encoded as JSON or YAML.'),
  template: z
    .string()
    .optional()
    .describe(
      'A Liquid template (sandboxed: no files, no code). Sources are variables by name; filters json, yaml, base64, base64_decode, env, required, and default.',
    ),
  templateFile: z
    .string()
    .min(1)
    .optional()
    .describe('The template in a file, read at start and at each reload.'),
  mode: fileMode().optional().describe('File mode; 0644, or 0400 for a secret (`secret: true`).'),
  uid: z.number().int().min(0).optional().describe('Owner (needs root).'),
  gid: z.number().int().min(0).optional().describe('Group (needs root).'),
};

function contentRefine(
  f: { source?: string | undefined; template?: string | undefined; templateFile?: string | undefined },
  ctx: z.RefinementCtx,
) {
  const n = [f.source, f.template, f.templateFile].filter((x) => x !== undefined).length;
  if (n !== 1)
    addPillionIssue(
      ctx,
      n === 0 ? 'PILLION_ERR_CONFIG_MISSING_KEY' : 'PILLION_ERR_CONFIG_BAD_VALUE',
      n === 0
        ? 'give one of source, template and templateFile'
        : 'give only one of source, template and templateFile',
      undefined,
      [n === 0 || f.source === undefined ? 'template' : 'source'],
    );
}

const setFileSchema = z
  .strictObject(contentFields)
  .superRefine(contentRefine)
  .describe('One file of the set.');

export type SetFileConfig = z.output<typeof setFileSchema>;

const destinationSchema = z
  .strictObject({
    path: z.string().min(1).optional().describe('The file to write (temp file, fsync, rename).'),
    directory: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A set of files written together: into a new directory swapped in by renaming a `..data` symlink, as the kubelet does, so the app sees every file of one version at once.',
      ),
    files: z
      .record(z.string().min(1), setFileSchema)
      .optional()
      .describe('With `directory`: the files of the set, by relative path.'),
    ...contentFields,
    secret: z
      .boolean()
      .optional()
      .describe(
        'The content is a secret: mode 0400 by default; never logged, and its versions in `/sync` are salted hashes.',
      ),
    check: checkSchema.optional(),
    wait: waitSchema.optional().describe("Debounce, as consul-template's `wait`; `sync.wait` when omitted."),
    notify: z
      .array(componentName())
      .optional()
      .describe('Notifiers to call after a change (every notifier, and exec, when omitted; [] for none).'),
    maxBytes: size({ min: '1B', max: '1GiB' })
      .default(10 * 1024 * 1024)
      .describe('A rendered file larger than this is refused.'),
  })
  .superRefine((d, ctx) => {
    if ((d.path === undefined) === (d.directory === undefined))
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_MISSING_KEY', 'give one of path and directory', undefined, [
        'path',
      ]);
    if (d.directory !== undefined) {
      if (d.files === undefined || Object.keys(d.files).length === 0)
        addPillionIssue(ctx, 'PILLION_ERR_CONFIG_MISSING_KEY', 'a directory needs files', undefined, [
          'files',
        ]);
      if (d.source !== undefined || d.template !== undefined || d.templateFile !== undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          'a directory is made of its files: give source, template or templateFile on each',
          undefined,
          ['directory'],
        );
      if (d.check?.schema !== undefined || d.check?.schemaFile !== undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          'a JSON Schema checks one file: give it to a destination with path',
          'a directory can be checked by a command, which gets the staged directory',
          ['check', d.check.schema !== undefined ? 'schema' : 'schemaFile'],
        );
      for (const rel of Object.keys(d.files ?? {}))
        if (rel.startsWith('/') || rel.split('/').includes('..') || rel.startsWith('.'))
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            `"${rel}" must be a relative path without ".." that does not start with "."`,
            undefined,
            ['files', rel],
          );
    } else {
      if (d.files !== undefined)
        addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'files go with directory, not path', undefined, [
          'files',
        ]);
      contentRefine(d, ctx);
    }
  })
  .describe('A file (path) or a set of files (directory) kept current.');

export type DestinationConfig = z.output<typeof destinationSchema>;

// --- telling the app ------------------------------------------------------------------------------

const notifierCommon = {
  splay: duration({ min: '0s', max: '1h' })
    .prefault('0s')
    .describe(
      'Wait a random time up to this before notifying, so many sidecars do not reload their apps at once.',
    ),
  debounce: duration({ min: '0s', max: '1h' })
    .prefault('0s')
    .describe('Changes within this time of each other are told once.'),
};

const signalNotifier = z
  .strictObject({
    type: z.literal('signal'),
    signal: z.enum(SIGNALS).default('SIGHUP').describe('The signal to send.'),
    pidFile: z.string().min(1).optional().describe('A file holding the pid (read at each notification).'),
    process: z
      .string()
      .min(1)
      .optional()
      .describe(
        "A process name (its /proc comm, or its command line's first word or script); every match is signalled.",
      ),
    container: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      .max(63)
      .optional()
      .describe(
        'Under `pillion pod`: a container of the same pod, by name; its process group is signalled, at the pid it has at that moment (it changes when the container restarts).',
      ),
    ...notifierCommon,
  })
  .superRefine((n, ctx) => {
    const given = [n.pidFile, n.process, n.container].filter((x) => x !== undefined).length;
    if (given !== 1)
      addPillionIssue(
        ctx,
        given === 0 ? 'PILLION_ERR_CONFIG_MISSING_KEY' : 'PILLION_ERR_CONFIG_BAD_VALUE',
        given === 0
          ? 'give one of pidFile, process and container'
          : 'give only one of pidFile, process and container',
        undefined,
        ['pidFile'],
      );
  })
  .describe('A signal to the app.');

const httpNotifier = z
  .strictObject({
    type: z.literal('http'),
    url: z.url({ protocol: /^https?$/ }).describe('The URL to call, e.g. http://127.0.0.1:8080/reload.'),
    method: z.enum(['POST', 'PUT', 'GET']).default('POST').describe('Request method.'),
    headers: z.record(z.string(), secret()).default({}).describe('Extra headers (values are secrets).'),
    timeout: duration({ min: '10ms', max: '10m' }).prefault('5s').describe('A call that takes longer fails.'),
    ...notifierCommon,
  })
  .describe('An HTTP request to the app; 2xx is success.');

const commandNotifier = z
  .strictObject({
    type: z.literal('command'),
    command: z
      .array(z.string())
      .min(1)
      .describe('Program and arguments (no shell; use [sh, -c, ...] for one).'),
    timeout: duration({ min: '10ms', max: '10m' })
      .prefault('30s')
      .describe('A command that runs longer is killed and counts as failed.'),
    ...notifierCommon,
  })
  .describe('A command; exit 0 is success.');

const notifierSchema = z.discriminatedUnion('type', [signalNotifier, httpNotifier, commandNotifier]);

export type NotifierConfig = z.output<typeof notifierSchema>;

const execSchema = z
  .strictObject({
    command: z.array(z.string()).min(1).describe('The app: program and arguments.'),
    onChange: z
      .enum(['signal', 'restart'])
      .default('signal')
      .describe('After a change: send `signal`, or stop the app and start it again.'),
    signal: z.enum(SIGNALS).default('SIGHUP').describe('The signal sent on a change.'),
    forwardSignals: z
      .array(z.enum(['SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGQUIT', 'SIGCONT']))
      .default(['SIGUSR1', 'SIGUSR2', 'SIGWINCH'])
      .describe(
        'Signals pillion gets that are passed to the app (SIGTERM and SIGINT stop it, after a drain).',
      ),
    killTimeout: duration({ min: '10ms', max: '10m' })
      .prefault('10s')
      .describe('After SIGTERM, how long the app may take to exit before SIGKILL.'),
    workingDir: z.string().min(1).optional().describe('Where the app runs.'),
    ...notifierCommon,
  })
  .describe(
    "Supervisor mode: pillion starts the app after the first render, passes signals to it, signals or restarts it on change, and restarts it (with the kubelet's back-off) when it exits.",
  );

export type ExecConfig = z.output<typeof execSchema>;

// --- the section ------------------------------------------------------------------------------------

export const syncSchema = z
  .strictObject({
    once: z
      .boolean()
      .default(false)
      .describe(
        'Render every destination once and stop watching (`pillion sync` then exits; under `pillion run` start waits for it).',
      ),
    sources: z.record(componentName(), sourceSchema).describe('Named sources of values.'),
    destinations: z.record(componentName(), destinationSchema).describe('Named files kept current.'),
    notify: z.record(componentName(), notifierSchema).default({}).describe('Named ways to tell the app.'),
    exec: execSchema.optional(),
    wait: waitSchema.prefault({}).describe('Debounce of every destination without its own `wait`.'),
    rollback: z
      .strictObject({
        window: duration({ min: '1s', max: '1h' })
          .prefault('30s')
          .describe(
            "After a change is written and told, how long the app is watched (the `app` section's health check); if it turns unhealthy, the previous files are put back, the app is told again, and the new version is not applied again until its source changes.",
          ),
      })
      .optional()
      .describe('Roll back a change the app cannot live with. Needs the `app` section.'),
  })
  .superRefine((c, ctx) => {
    const sources = Object.keys(c.sources);
    const notifiers = Object.keys(c.notify);
    const checkSource = (name: string | undefined, path: PropertyKey[]) => {
      if (name !== undefined && !sources.includes(name))
        addPillionIssue(
          ctx,
          'PILLION_ERR_SYNC_UNKNOWN_SOURCE',
          `no source named "${name}"`,
          hint(name, sources),
          path,
        );
    };
    if (Object.keys(c.destinations).length === 0)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'sync needs at least one destination',
        undefined,
        ['destinations'],
      );
    const paths = new Map<string, string>();
    for (const [name, d] of Object.entries(c.destinations)) {
      checkSource(d.source, ['destinations', name, 'source']);
      for (const [rel, f] of Object.entries(d.files ?? {}))
        checkSource(f.source, ['destinations', name, 'files', rel, 'source']);
      d.notify?.forEach((n, i) => {
        if (!notifiers.includes(n) && !(n === 'exec' && c.exec))
          addPillionIssue(
            ctx,
            'PILLION_ERR_SYNC_UNKNOWN_NOTIFIER',
            `no notifier named "${n}"`,
            hint(n, notifiers),
            ['destinations', name, 'notify', i],
          );
      });
      const where = d.path ?? d.directory!;
      const other = paths.get(where);
      if (other !== undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `destinations "${other}" and "${name}" write the same path ${where}`,
          undefined,
          ['destinations', name, d.path ? 'path' : 'directory'],
        );
      paths.set(where, name);
    }
    if (c.once && c.exec)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'once and exec do not go together',
        'an init container renders and exits; leave exec to the sidecar',
        ['exec'],
      );
  })
  .describe(
    "Config and secrets sync: keeps the app's files current from file, HTTP, etcd, Consul, Vault, env and literal sources, tells the app, and rolls back a change it cannot live with.",
  );

function hint(name: string, known: string[]): string {
  const near = didYouMean(name, known);
  return `${near ? `did you mean "${near}"? ` : ''}defined: ${known.join(', ') || 'none'}`;
}

export type SyncConfig = z.output<typeof syncSchema>;
