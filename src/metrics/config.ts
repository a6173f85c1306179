// Schema of the `metrics:` section: the app's endpoints scraped every interval (JSON mapped by
// rules, Prometheus text or OpenMetrics passed through), relabeling, enrichment, and the listener
// that exposes the app's series beside pillion's own. Only zod here: the scraper and jsonpath-plus
// load with the role.

import { z } from 'zod';
import {
  addPillionIssue,
  address,
  componentName,
  duration,
  httpPath,
  regex,
  secret,
  size,
} from '../config/index.js';

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function named(pattern: RegExp, what: string, hint: string) {
  return z.string().superRefine((v, ctx) => {
    if (!pattern.test(v) || (what === 'label name' && v.startsWith('__')))
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', `"${v}" is not a valid ${what}`, hint);
  });
}

const metricName = named(
  METRIC_NAME,
  'metric name',
  'metric names are letters, digits, "_" and ":", not starting with a digit',
);
const labelName = named(
  LABEL_NAME,
  'label name',
  'label names are letters, digits and "_", not starting with a digit or "__"',
);

/** A JSONPath (jsonpath-plus syntax), checked to parse when the config is loaded. */
const jsonPath = z.string().superRefine((v, ctx) => {
  if (!v.startsWith('$') && v !== '@key')
    addPillionIssue(
      ctx,
      'PILLION_ERR_CONFIG_BAD_VALUE',
      `"${v}" is not a JSONPath`,
      'JSONPaths start with "$" ("$.requests", "$.queues[*]"); "@key" is the key or index of the matched element',
    );
  else if (!balanced(v))
    // jsonpath-plus reads "$.items[" as "$.items": a typo would match something else, silently.
    addPillionIssue(
      ctx,
      'PILLION_ERR_CONFIG_BAD_VALUE',
      `"${v}" has an unclosed bracket, parenthesis or quote`,
      'close every [ ( and quote: "$.queues[*]", "$.items[?(@.enabled)]", "$[\'a key\']"',
    );
});

/** Brackets and parentheses closed in order, quotes closed (outside quotes). */
function balanced(path: string): boolean {
  const open: string[] = [];
  let quote: string | undefined;
  for (const c of path) {
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '[' || c === '(') open.push(c);
    else if (c === ']' || c === ')') {
      if (open.pop() !== (c === ']' ? '[' : '(')) return false;
    }
  }
  return quote === undefined && open.length === 0;
}

const ruleSchema = z
  .strictObject({
    name: metricName.describe('The metric name the series get.'),
    type: z
      .enum(['counter', 'gauge', 'untyped'])
      .default('gauge')
      .describe('The metric type exposed (counter, gauge or untyped).'),
    help: z.string().default('').describe('The HELP text exposed.'),
    path: jsonPath
      .default('$')
      .describe(
        'JSONPath selecting the elements: one series per match (`$.queues[*]` for each array element, `$.workers.*` for each map entry).',
      ),
    value: jsonPath
      .default('$')
      .describe(
        'JSONPath to the number, from each matched element (`$` is the element itself). Booleans are 1 and 0; strings go through valueMap.',
      ),
    labels: z
      .record(labelName, z.string())
      .default({})
      .describe(
        'Labels of each series: a JSONPath from the matched element ("$.name"), "@key" for its key or array index, or a literal value.',
      ),
    valueMap: z
      .record(z.string(), z.number())
      .default({})
      .describe(
        'Numbers for string values ("up": 1, "down": 0); a string not listed is counted as not_a_number.',
      ),
  })
  .describe("One JSON mapping rule (json_exporter's idea): where the values are, what they are called.");

export type JsonRule = z.output<typeof ruleSchema>;

const relabelSchema = z
  .strictObject({
    action: z
      .enum(['keep', 'drop', 'rename', 'addLabel', 'dropLabel'])
      .describe(
        'keep/drop: only the families whose name matches / all but those; rename: the name matching `name` becomes `to` ($1 for groups); addLabel: set `label` to `value`; dropLabel: remove `label`.',
      ),
    name: regex()
      .optional()
      .describe(
        'A regular expression matching whole family names; the rule applies to these only (all when omitted).',
      ),
    to: z.string().optional().describe('rename: the new name ($1, $2 for groups of `name`).'),
    label: labelName.optional().describe('addLabel/dropLabel: the label name.'),
    value: z.string().optional().describe('addLabel: the label value.'),
  })
  .superRefine((r, ctx) => {
    const need = (key: 'name' | 'to' | 'label' | 'value') => {
      if (r[key] === undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_MISSING_KEY',
          `action ${r.action} needs \`${key}\``,
          undefined,
          [key],
        );
    };
    if (r.action === 'keep' || r.action === 'drop' || r.action === 'rename') need('name');
    if (r.action === 'rename') need('to');
    if (r.action === 'addLabel') {
      need('label');
      need('value');
    }
    if (r.action === 'dropLabel') need('label');
  })
  .describe('A relabeling step, applied in order to the scraped families.');

export type RelabelRule = z.output<typeof relabelSchema>;

const targetSchema = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }).describe("The app's metrics endpoint (http or https)."),
    format: z
      .enum(['json', 'prometheus'])
      .describe('json: mapped by `rules`; prometheus: Prometheus text or OpenMetrics, passed through.'),
    interval: duration({ min: '100ms' }).prefault('10s').describe('How often the endpoint is scraped.'),
    timeout: duration({ min: '10ms' })
      .optional()
      .describe(
        'How long a scrape may take; past it the scrape fails and the series are dropped. Default: 5s, or the interval when that is shorter (as Prometheus does).',
      ),
    headers: z
      .record(z.string(), secret())
      .default({})
      .describe('Request headers (Authorization, say); their values are redacted in /config.'),
    maxBodySize: size({ min: '1KiB', max: '256MiB' })
      .prefault('16MiB')
      .describe('The largest body read; a larger one fails the scrape (reason too_large).'),
    maxSeries: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(20_000)
      .describe(
        "The most series one scrape may yield; more fails the scrape (reason series_limit) as Prometheus's sample_limit does.",
      ),
    maxLabelValueLength: z
      .number()
      .int()
      .min(1)
      .max(65_536)
      .default(1024)
      .describe('A longer label value skips its series (reason label_too_long).'),
    rules: z.array(ruleSchema).default([]).describe('format json: how the document becomes series.'),
    relabel: z.array(relabelSchema).default([]).describe('Relabeling of the scraped families, in order.'),
  })
  .superRefine((t, ctx) => {
    if (t.format === 'json' && t.rules.length === 0)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'a json target needs rules: nothing would be exposed',
        'add rules: [{ name: app_requests_total, type: counter, value: $.requests }]',
        ['rules'],
      );
    if (t.format === 'prometheus' && t.rules.length > 0)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'rules map JSON; a prometheus target is passed through',
        'use relabel to keep, drop or rename its families',
        ['rules'],
      );
    if (t.timeout !== undefined && t.timeout > t.interval)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_OUT_OF_RANGE',
        'timeout is longer than interval',
        'a scrape must end before the next one starts',
        ['timeout'],
      );
  })
  .describe('An endpoint of the app that is scraped.');

export type ScrapeTarget = z.output<typeof targetSchema>;

const enrichSchema = z
  .strictObject({
    labels: z
      .record(labelName, z.string())
      .default({})
      .describe('Static labels on every app series; ${ENV} references are expanded (environment, version).'),
    hostname: labelName
      .optional()
      .describe('A label name that receives the host name (HOSTNAME, else the OS host name).'),
    kubernetes: z
      .strictObject({
        labelsFile: z
          .string()
          .optional()
          .describe(
            'A downward API file of `key="value"` lines with the pod\'s labels (e.g. /etc/podinfo/labels); each becomes a label, its name with every character outside [a-zA-Z0-9_] as "_".',
          ),
      })
      .optional()
      .describe(
        "Labels pod and namespace from the downward API environment (POD_NAME, POD_NAMESPACE; under `pillion pod` PILLION_POD_NAME and PILLION_POD_NAMESPACE), and the pod's labels from a downward API file.",
      ),
  })
  .prefault({})
  .describe(
    "Labels added to every series of the app. A label the app already has is renamed exported_NAME and the added one set, as Prometheus's honor_labels: false does.",
  );

export type MetricsEnrich = z.output<typeof enrichSchema>;

const retrySchema = z
  .strictObject({
    initialBackoff: duration({ min: '1ms' })
      .prefault('500ms')
      .describe('The longest delay before the first retry.'),
    maxBackoff: duration({ min: '1ms' }).prefault('30s').describe('The longest delay between retries.'),
  })
  .prefault({})
  .describe(
    'Retries of a failed push: delays doubling from initialBackoff up to maxBackoff, with full jitter.',
  );

const pushCommon = {
  url: z.url({ protocol: /^https?$/ }).describe('Where to push (http or https).'),
  headers: z
    .record(z.string(), secret())
    .default({})
    .describe('Request headers (Authorization, say); their values are redacted in /config.'),
  timeout: duration({ min: '10ms' }).prefault('10s').describe('How long one push may take.'),
  retry: retrySchema,
};

const jsonPushSchema = z
  .strictObject({
    type: z.literal('json'),
    ...pushCommon,
    batch: z
      .strictObject({
        maxDocuments: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(100)
          .describe('Documents in one POST at most.'),
        maxAge: duration({ min: '1ms' })
          .prefault('1s')
          .describe('How long a document waits for others to join its batch.'),
      })
      .prefault({})
      .describe('Batching: one POST carries a JSON array of documents.'),
    maxBufferedDocuments: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1000)
      .describe(
        'Documents held while the endpoint is down; past it the oldest is dropped and counted (reason buffer_full).',
      ),
  })
  .describe(
    "POST each scrape as a JSON document (the target, the time, the enrichment labels, the app's own JSON document and the series), batched.",
  );

const pushgatewaySchema = z
  .strictObject({
    type: z.literal('pushgateway'),
    ...pushCommon,
    job: z.string().min(1).describe('The job label of the group.'),
    grouping: z
      .record(labelName, z.string().min(1))
      .default({})
      .describe('Further grouping labels of the group (instance, ...).'),
  })
  .describe(
    "PUT the app's series to a Prometheus Pushgateway after each scrape, replacing the group (a failed scrape empties it).",
  );

const otlpSchema = z
  .strictObject({
    type: z.literal('otlp'),
    ...pushCommon,
    encoding: z
      .enum(['protobuf', 'json'])
      .default('protobuf')
      .describe('The OTLP/HTTP body: binary protobuf (application/x-protobuf) or its JSON mapping.'),
    serviceName: z
      .string()
      .min(1)
      .optional()
      .describe("The resource's service.name (without it: the target's name with one target, else app)."),
  })
  .describe(
    "Send the app's series as OTLP/HTTP metrics (an OpenTelemetry collector's :4318/v1/metrics) after each scrape: counters as cumulative monotonic sums, gauges, histograms; encoded by OpenTelemetry's own serializer.",
  );

export const pushSchema = z.discriminatedUnion('type', [jsonPushSchema, pushgatewaySchema, otlpSchema]);
export type PushConfig = z.output<typeof pushSchema>;

const statsdSchema = z
  .strictObject({
    listen: address()
      .prefault('127.0.0.1:9125')
      .describe("The UDP address StatsD lines are received on (statsd_exporter's port by default)."),
    prefix: z
      .string()
      .regex(/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/, 'a prefix is made of letters, digits, "_" and ":"')
      .default('')
      .describe('Put before every StatsD metric name (`statsd_`, say).'),
    maxSeries: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(10_000)
      .describe('The most series kept; a new one past it is dropped and counted (reason series_limit).'),
    buckets: z
      .array(z.number().positive())
      .min(1)
      .default([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
      .describe('Histogram buckets of timers (ms lines, in seconds) and histograms (h and d lines).'),
    receiveBuffer: size({ min: '64KiB', max: '256MiB' })
      .prefault('4MiB')
      .describe("The socket's receive buffer: what a burst may queue before the kernel drops datagrams."),
  })
  .describe(
    'StatsD lines received on UDP (`name:value|c`, `|g`, `|ms`, `|h`, with `|@rate` and DogStatsD `|#tag:value` tags), exposed as counters, gauges and histograms.',
  );

export type StatsdConfig = z.output<typeof statsdSchema>;

export const metricsSchema = z
  .strictObject({
    listen: address()
      .nullable()
      .prefault(':15020')
      .describe(
        "Address of the metrics listener (Istio's merged-metrics port); null for none (the admin server's /metrics serves the same).",
      ),
    path: httpPath().default('/metrics').describe('The path the listener serves the metrics at.'),
    scrape: z
      .record(componentName(), targetSchema)
      .default({})
      .describe('The app endpoints scraped, by name (the `target` label of the scrape metrics).'),
    enrich: enrichSchema,
    push: z
      .record(
        z.string().regex(NAME, 'names are lowercase letters, digits, "_" and "-", starting with a letter'),
        pushSchema,
      )
      .default({})
      .describe(
        "Where the app's metrics are pushed after each scrape, by name (the `push` label of the push metrics).",
      ),
    statsd: statsdSchema.optional(),
    processes: z
      .boolean()
      .default(true)
      .describe(
        "Expose /top's numbers as metrics: CPU seconds and resident memory of the app's and the sidecars' processes (per container under `pillion pod`), the host's memory in use and load.",
      ),
  })
  .describe(
    "Metrics: scrape the app's metrics (JSON mapped by rules, Prometheus text passed through), enrich and relabel them, and expose them with pillion's own.",
  );

export type MetricsConfig = z.output<typeof metricsSchema>;
