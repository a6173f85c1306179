// Schema of the `logs:` section: named sources, an ordered list of transforms, named sinks, and
// where the role keeps its checkpoints, disk buffers and dead letters.

import { z } from 'zod';
import {
  addPillionIssue,
  address,
  componentName as sharedComponentName,
  duration,
  regex,
  secret,
  size,
} from '../config/index.js';
import { didYouMean } from '../lib/did-you-mean.js';
import { FACILITY_NAMES } from './parsers/syslog.js';

const componentName = () => sharedComponentName('component name');

const fieldName = z.string().min(1).max(256);

// --- parsing --------------------------------------------------------------------------------

const parserSchema = z
  .union([
    z.enum(['none', 'json', 'logfmt']),
    z.strictObject({
      type: z.literal('regex'),
      pattern: regex().describe('A regular expression with named groups; each group becomes a field.'),
    }),
  ])
  .default('none')
  .describe(
    'How a record becomes fields: `none` keeps it as `message`; `json` (an object per record); `logfmt` (key=value pairs); or `{ type: regex, pattern }` with named groups. A record that fails to parse is kept as `message` with `parse_error` set, and counted.',
  );

export type ParserConfig = z.output<typeof parserSchema>;

const multilineSchema = z
  .strictObject({
    startPattern: regex().describe(
      'A line matching this starts a new event; other lines are appended to the event before it (stack traces, wrapped messages).',
    ),
    timeout: duration({ min: '1ms' })
      .default(1000)
      .describe('An event with no new line for this long is complete and sent.'),
    maxLines: z
      .number()
      .int()
      .min(2)
      .max(100_000)
      .default(500)
      .describe('An event is cut after this many lines.'),
    maxBytes: size({ min: '1KiB' })
      .default(1024 * 1024)
      .describe('An event is cut (and flagged `truncated`) after this many bytes.'),
  })
  .describe('Joins lines that belong to one event, by the pattern of the first line.');

export type MultilineConfig = z.output<typeof multilineSchema>;

/** Fields shared by the sources that read lines (tail, stdin). */
const lineFields = {
  format: z
    .enum(['lines', 'cri'])
    .default('lines')
    .describe(
      '`lines`: each line is a record. `cri`: the kubelet/containerd container log format (`time stream P|F text`); partial lines are joined and `time` and `stream` become fields.',
    ),
  maxLineBytes: size({ min: '1KiB', max: '1GiB' })
    .default(1024 * 1024)
    .describe('A longer line is cut at this size and flagged `truncated: true`; the rest of it is skipped.'),
  multiline: multilineSchema.optional(),
  parser: parserSchema,
};

// --- sources --------------------------------------------------------------------------------

const tailSource = z
  .strictObject({
    type: z.literal('tail'),
    include: z
      .array(z.string().min(1))
      .min(1)
      .describe(
        'Glob patterns of the files to follow (`*`, `?`, `**`, `[...]`); new matching files are picked up.',
      ),
    exclude: z.array(z.string().min(1)).default([]).describe('Glob patterns of files to leave alone.'),
    startAt: z
      .enum(['beginning', 'end'])
      .default('beginning')
      .describe(
        'Where to start reading the files found at start-up that have no checkpoint; files that appear later are read from their beginning, and files with a checkpoint resume from it.',
      ),
    globInterval: duration({ min: '10ms' })
      .default(1000)
      .describe(
        'How often the patterns are matched again to find new and rotated files; their directories are also watched (inotify), so a new file is usually seen at once.',
      ),
    pollInterval: duration({ min: '1ms' })
      .default(250)
      .describe(
        'How often open files are checked for growth, truncation and rotation (a write seen by the directory watch is read at once).',
      ),
    partialLineTimeout: duration({ min: '10ms' })
      .default(5000)
      .describe(
        'A last line left without its newline this long is sent as it is, flagged `partial: true`; the rest of it, if it comes, is another event, flagged too. At a stop it is sent at once.',
      ),
    pathField: fieldName.optional().describe("A field to receive each event's file path (none by default)."),
    ...lineFields,
  })
  .describe(
    'Follows files: checkpoints per file identity (inode and a fingerprint of its first bytes), rotation by rename and copytruncate.',
  );

const stdinSource = z
  .strictObject({
    type: z.literal('stdin'),
    ...lineFields,
  })
  .describe("Reads the process's standard input.");

const httpSource = z
  .strictObject({
    type: z.literal('http'),
    listen: address().describe('Address to listen on; keep it on loopback.'),
    path: z.string().startsWith('/').default('/').describe('The path clients POST to.'),
    maxBodyBytes: size({ min: '1KiB', max: '1GiB' })
      .default(10 * 1024 * 1024)
      .describe('Larger bodies are refused with 413.'),
    acknowledgements: z
      .boolean()
      .default(true)
      .describe(
        'Answer 200 only once every sink has the events (delivered or in its disk buffer); false answers 202 as soon as they are buffered.',
      ),
  })
  .describe(
    'Accepts JSON (an object or an array of objects) or NDJSON bodies POSTed by the app. A full buffer answers 503 with Retry-After.',
  );

const syslogSource = z
  .strictObject({
    type: z.literal('syslog'),
    listen: address().describe('Address to listen on.'),
    protocol: z
      .enum(['udp', 'tcp'])
      .default('udp')
      .describe('UDP datagrams, or TCP with octet-counted or newline framing (detected per message).'),
    maxMessageBytes: size({ min: '480B', max: '16MiB' })
      .default(64 * 1024)
      .describe('Longer messages are cut and flagged `truncated`.'),
  })
  .describe(
    'Receives RFC 5424 and RFC 3164 messages; one that fits neither is kept as `message` with `parse_error`.',
  );

const sourceSchema = z.discriminatedUnion('type', [tailSource, stdinSource, httpSource, syslogSource]);

export type SourceConfig = z.output<typeof sourceSchema>;
export type TailSourceConfig = z.output<typeof tailSource>;
export type StdinSourceConfig = z.output<typeof stdinSource>;
export type HttpSourceConfig = z.output<typeof httpSource>;
export type SyslogSourceConfig = z.output<typeof syslogSource>;

// --- transforms -----------------------------------------------------------------------------

const appliesTo = {
  sources: z
    .array(componentName())
    .optional()
    .describe('Apply only to events from these sources (all when omitted).'),
};

const enrichTransform = z
  .strictObject({
    type: z.literal('enrich'),
    ...appliesTo,
    fields: z
      .record(fieldName, z.string())
      .default({})
      .describe('Static fields to set; `${ENV}` references are expanded when the config is loaded.'),
    hostname: fieldName.optional().describe("A field to receive the host's name."),
    collectedAt: fieldName
      .optional()
      .describe('A field to receive the time the event was collected (RFC 3339).'),
    kubernetes: z
      .strictObject({
        field: fieldName
          .default('kubernetes')
          .describe('The object field that receives pod, namespace, node and labels.'),
        labelsFile: z
          .string()
          .optional()
          .describe(
            'A downward API file of `key="value"` lines with the pod\'s labels (e.g. /etc/podinfo/labels).',
          ),
      })
      .optional()
      .describe(
        'Pod name, namespace and node from the downward API environment (POD_NAME, POD_NAMESPACE, NODE_NAME), labels from a downward API file.',
      ),
  })
  .describe('Adds fields: static values, the host name, pod metadata, the time of collection.');

const renameTransform = z
  .strictObject({
    type: z.literal('rename'),
    ...appliesTo,
    fields: z.record(fieldName, fieldName).describe('Old name → new name.'),
  })
  .describe('Renames fields.');

const removeTransform = z
  .strictObject({
    type: z.literal('remove'),
    ...appliesTo,
    fields: z.array(fieldName).min(1).describe('Fields to delete.'),
  })
  .describe('Deletes fields.');

const keepTransform = z
  .strictObject({
    type: z.literal('keep'),
    ...appliesTo,
    fields: z.array(fieldName).min(1).describe('The only fields left.'),
  })
  .describe('Deletes every field not listed.');

const filterTransform = z
  .strictObject({
    type: z.literal('filter'),
    ...appliesTo,
    action: z.enum(['keep', 'drop']).default('drop').describe('What to do with the events that match.'),
    field: fieldName.describe('The field tested.'),
    equals: z.array(z.string()).optional().describe('Matches when the field (as text) is one of these.'),
    matches: regex().optional().describe('Matches when the field (as text) matches this expression.'),
  })
  .superRefine((f, ctx) => {
    if ((f.equals === undefined) === (f.matches === undefined))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'a filter needs exactly one of `equals` and `matches`',
      );
  })
  .describe(
    "Keeps or drops events by a field's value; dropped events are counted, and acknowledged as handled.",
  );

const redactTransform = z
  .strictObject({
    type: z.literal('redact'),
    ...appliesTo,
    patterns: z
      .array(z.union([z.enum(['email', 'bearer', 'jwt', 'credit-card', 'ipv4']), regex()]))
      .min(1)
      .describe(
        'What to replace: the built-in patterns `email`, `bearer` (Authorization tokens), `jwt`, `credit-card`, `ipv4`, or regular expressions.',
      ),
    fields: z
      .array(fieldName)
      .optional()
      .describe('Fields to scan (every string field, nested too, when omitted).'),
    replacement: z.string().default('[REDACTED]').describe('The text put in place of each match.'),
  })
  .describe('Replaces secrets and personal data before anything leaves the process.');

const timestampTransform = z
  .strictObject({
    type: z.literal('timestamp'),
    ...appliesTo,
    field: fieldName.describe('The field holding the time.'),
    format: z
      .enum(['auto', 'rfc3339', 'unix', 'unix_ms', 'common-log'])
      .default('auto')
      .describe(
        '`auto` accepts RFC 3339/ISO 8601, epoch seconds or milliseconds (by magnitude) and the common log format.',
      ),
    target: fieldName.default('timestamp').describe('The field that receives the time as RFC 3339 (UTC).'),
  })
  .describe(
    'Parses a time from a field; one that cannot be parsed is left as it was and `timestamp_error` is set.',
  );

const transformSchema = z.discriminatedUnion('type', [
  enrichTransform,
  renameTransform,
  removeTransform,
  keepTransform,
  filterTransform,
  redactTransform,
  timestampTransform,
]);

export type TransformConfig = z.output<typeof transformSchema>;

// --- sinks ----------------------------------------------------------------------------------

/**
 * When a batch is complete. Network sinks wait up to a second to fill a batch (one request per
 * second, not per line, is what ClickHouse and Elasticsearch want); local sinks (file, stdout,
 * syslog) write whatever is there as soon as the previous write is done, so their batches grow
 * only while a write is in flight.
 */
function batchSchema(maxAge: number) {
  return z
    .strictObject({
      maxEvents: z
        .number()
        .int()
        .min(1)
        .max(1_000_000)
        .default(10_000)
        .describe('A batch is sent when it holds this many events,'),
      maxBytes: size({ min: '1KiB', max: '1GiB' })
        .default(4 * 1024 * 1024)
        .describe('or this many bytes,'),
      maxAge: duration()
        .default(maxAge)
        .describe(
          'or its oldest event has waited this long (0: at once, batching only what arrives while a send is in flight).',
        ),
    })
    .prefault({})
    .describe('When a batch is complete.');
}

/** Sinks that send over the network wait this long to fill a batch. */
const NETWORK_MAX_AGE = 1000;
/** Sinks that write locally (file, stdout) or stream (syslog) send at once. */
const STREAM_MAX_AGE = 0;

const retrySchema = z
  .strictObject({
    initialBackoff: duration({ min: '1ms' }).default(500).describe('The delay before the first retry.'),
    maxBackoff: duration({ min: '1ms' })
      .default(60_000)
      .describe('Delays double up to this (with full jitter).'),
    timeout: duration({ min: '1ms' }).default(30_000).describe('One delivery attempt fails after this long.'),
  })
  .prefault({})
  .describe(
    'Network errors, timeouts, 429 and 5xx are retried forever, with exponential back-off and jitter; nothing is dropped.',
  );

const bufferSchema = z
  .strictObject({
    type: z
      .enum(['memory', 'disk'])
      .default('memory')
      .describe('`disk` keeps events in checksummed segment files that survive a restart.'),
    maxBytes: size({ min: '64KiB' })
      .default(64 * 1024 * 1024)
      .describe(
        'When the buffer holds this much, sources pause (tail stops reading, HTTP answers 503, UDP counts drops).',
      ),
  })
  .prefault({})
  .describe("The sink's buffer.");

const sinkCommon = {
  sources: z
    .array(componentName())
    .optional()
    .describe('Take events only from these sources (all when omitted).'),
  batch: batchSchema(NETWORK_MAX_AGE),
  retry: retrySchema,
  buffer: bufferSchema,
};

const compression = z.enum(['gzip', 'none']).default('gzip').describe('Request body compression.');
const url = z
  .url({ protocol: /^https?$/ })
  .superRefine((v, ctx) => {
    // The URL is shown in /config and in logs; credentials belong in the secret fields.
    if (/^[a-z]+:\/\/[^/]*@/i.test(v))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'the URL holds credentials (user:password@), which would show in /config and logs',
        'put them in `user` and `password` (or `headers`), which are kept secret',
      );
  })
  .describe('Base URL (http or https), without credentials.');

const clickhouseSink = z
  .strictObject({
    type: z.literal('clickhouse'),
    ...sinkCommon,
    url,
    database: z.string().default('default').describe('Database name.'),
    table: z.string().min(1).describe('Table to insert into (`INSERT ... FORMAT JSONEachRow`).'),
    user: z.string().optional().describe('User name.'),
    password: secret().optional().describe('Password.'),
    skipUnknownFields: z.boolean().default(true).describe('Ignore event fields the table has no column for.'),
    compression,
  })
  .describe('ClickHouse over its HTTP interface.');

const elasticsearchSink = z
  .strictObject({
    type: z.literal('elasticsearch'),
    ...sinkCommon,
    url,
    index: z.string().min(1).describe('Index (or data stream) name.'),
    action: z
      .enum(['create', 'index'])
      .default('create')
      .describe('Bulk action per event (`create` for data streams).'),
    user: z.string().optional().describe('Basic-auth user.'),
    password: secret().optional().describe('Basic-auth password.'),
    apiKey: secret().optional().describe('An API key (sent as `Authorization: ApiKey ...`).'),
    compression,
  })
  .describe(
    'Elasticsearch or OpenSearch `_bulk`; items that fail with 429 or 5xx are retried alone, others are dead-lettered.',
  );

const lokiSink = z
  .strictObject({
    type: z.literal('loki'),
    ...sinkCommon,
    url,
    labels: z
      .record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/), z.string())
      .default({})
      .describe('Stream labels: a label name → `{{field}}` (the value of an event field) or a fixed text.'),
    tenant: z.string().optional().describe('Sent as X-Scope-OrgID.'),
    user: z.string().optional().describe('Basic-auth user (Loki behind an authenticating gateway).'),
    password: secret().optional().describe('Basic-auth password.'),
    compression,
  })
  .describe('Grafana Loki push API (JSON); events are grouped into streams by their labels.');

const httpSink = z
  .strictObject({
    type: z.literal('http'),
    ...sinkCommon,
    url,
    method: z.enum(['POST', 'PUT']).default('POST').describe('Request method.'),
    encoding: z
      .enum(['ndjson', 'json'])
      .default('ndjson')
      .describe('One JSON object per line, or a JSON array.'),
    headers: z
      .record(z.string(), secret())
      .default({})
      .describe('Extra request headers (values are treated as secrets).'),
    compression,
  })
  .describe('Any HTTP endpoint; 2xx is success, 429/5xx retried, other 4xx dead-lettered.');

const syslogSink = z
  .strictObject({
    type: z.literal('syslog'),
    ...sinkCommon,
    batch: batchSchema(STREAM_MAX_AGE),
    address: address().describe('host:port of the syslog server (TCP).'),
    tls: z
      .strictObject({
        caFile: z
          .string()
          .optional()
          .describe("CA bundle to verify the server's certificate (system CAs when omitted)."),
        serverName: z.string().optional().describe('The name to verify (the address host when omitted).'),
        certFile: z.string().optional().describe('Client certificate (PEM), for mutual TLS.'),
        keyFile: z.string().optional().describe('Client key (PEM).'),
      })
      .optional()
      .describe('Connect with TLS (RFC 5425).'),
    facility: z.enum(FACILITY_NAMES).default('user').describe('Facility of every message.'),
    appName: z
      .string()
      .default('pillion')
      .describe('APP-NAME, or `{{field}}` to take it from an event field.'),
    severityField: fieldName
      .default('level')
      .describe('Field whose value (error, warn, info, debug, ...) sets the severity; info when absent.'),
    messageField: fieldName
      .optional()
      .describe('Send only this field as MSG; the whole event as JSON when omitted.'),
  })
  .describe('RFC 5424 messages over TCP with octet-counting framing (RFC 6587), optionally TLS.');

const fileSink = z
  .strictObject({
    type: z.literal('file'),
    ...sinkCommon,
    batch: batchSchema(STREAM_MAX_AGE),
    path: z.string().min(1).describe('File to append JSON lines to.'),
    maxBytes: size({ min: '1KiB' })
      .default(100 * 1024 * 1024)
      .describe('When the file reaches this size it is renamed to `<path>.1` (older ones shift up).'),
    maxFiles: z.number().int().min(1).max(1000).default(5).describe('Rotated files kept.'),
  })
  .describe('Appends one JSON object per line to a file, rotated by size.');

const stdoutSink = z
  .strictObject({
    type: z.literal('stdout'),
    ...sinkCommon,
    batch: batchSchema(STREAM_MAX_AGE),
  })
  .describe("Writes one JSON object per line to the process's standard output.");

const sinkSchema = z.discriminatedUnion('type', [
  clickhouseSink,
  elasticsearchSink,
  lokiSink,
  httpSink,
  syslogSink,
  fileSink,
  stdoutSink,
]);

export type SinkConfig = z.output<typeof sinkSchema>;
export type ClickhouseSinkConfig = z.output<typeof clickhouseSink>;
export type ElasticsearchSinkConfig = z.output<typeof elasticsearchSink>;
export type LokiSinkConfig = z.output<typeof lokiSink>;
export type HttpSinkConfig = z.output<typeof httpSink>;
export type SyslogSinkConfig = z.output<typeof syslogSink>;
export type FileSinkConfig = z.output<typeof fileSink>;
export type BatchConfig = z.output<ReturnType<typeof batchSchema>>;
export type RetryConfig = z.output<typeof retrySchema>;
export type BufferConfig = z.output<typeof bufferSchema>;

// --- the section ----------------------------------------------------------------------------

export const logsSchema = z
  .strictObject({
    dataDir: z
      .string()
      .optional()
      .describe(
        'Where checkpoints, disk buffers and dead letters are kept: `$PILLION_STATE_DIR/logs` (else `$XDG_STATE_HOME/pillion/logs`, else `~/.local/state/pillion/logs`) when omitted.',
      ),
    sources: z.record(componentName(), sourceSchema).describe('Named sources.'),
    transforms: z
      .array(transformSchema)
      .default([])
      .describe('Applied in order to every event (or to those of the sources named).'),
    sinks: z
      .record(componentName(), sinkSchema)
      .describe(
        'Named sinks; each receives every event (or those of the sources named) with its own batch, retry and buffer.',
      ),
    unhealthyAfter: duration({ min: '1ms' })
      .default(60_000)
      .describe('Readiness fails when a sink has been failing for this long.'),
  })
  .superRefine((c, ctx) => {
    const sources = Object.keys(c.sources);
    if (sources.length === 0)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_MISSING_KEY', 'logs needs at least one source', undefined, [
        'sources',
      ]);
    if (Object.keys(c.sinks).length === 0)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_MISSING_KEY', 'logs needs at least one sink', undefined, [
        'sinks',
      ]);
    const check = (names: string[] | undefined, path: PropertyKey[]) =>
      names?.forEach((n, i) => {
        if (!sources.includes(n))
          addPillionIssue(
            ctx,
            'PILLION_ERR_LOGS_UNKNOWN_SOURCE',
            `no source named "${n}"`,
            sourceHint(n, sources),
            [...path, i],
          );
      });
    c.transforms.forEach((t, i) => check(t.sources, ['transforms', i, 'sources']));
    for (const [name, s] of Object.entries(c.sinks)) check(s.sources, ['sinks', name, 'sources']);
    for (const name of sources) {
      const fed = Object.values(c.sinks).some((s) => s.sources === undefined || s.sources.includes(name));
      if (!fed && Object.keys(c.sinks).length > 0)
        addPillionIssue(
          ctx,
          'PILLION_ERR_LOGS_UNKNOWN_SOURCE',
          `source "${name}" feeds no sink: its events would go nowhere`,
          "add it to a sink's `sources:`, or remove the source",
          ['sources', name],
        );
    }
    const stdin = Object.values(c.sources).filter((s) => s.type === 'stdin').length;
    if (stdin > 1)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'only one source can read stdin', undefined, [
        'sources',
      ]);
  })
  .describe("The log role: collect, parse, enrich, buffer and ship the app's logs, at least once.");

function sourceHint(name: string, sources: string[]): string {
  const near = didYouMean(name, sources);
  return `${near ? `did you mean "${near}"? ` : ''}defined: ${sources.join(', ') || 'none'}`;
}

export type LogsConfig = z.output<typeof logsSchema>;
