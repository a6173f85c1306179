// Schema of a route's `transform:` (the API adapter): body rewrites with JSONata, form and XML
// conversion, status and header mapping. Only zod here: the expressions are compiled (and jsonata
// loaded) by the load checks and the proxy's build, and only when a route has a transform.

import { z } from 'zod';
import { addPillionIssue, size } from '../../config/index.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerName = () => z.string().regex(TOKEN, 'not a valid header name');
const headerValue = () =>
  z.string().superRefine((v, ctx) => {
    if (/[^\t\x20-\x7e]/.test(v) || /^[ \t]|[ \t]$/.test(v))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'header values are printable ASCII without leading or trailing spaces',
      );
  });

/** The body formats the adapter reads and writes. */
export const BODY_FORMATS = ['json', 'form', 'xml'] as const;
export type BodyFormat = (typeof BODY_FORMATS)[number];

const format = z.enum(BODY_FORMATS);

const headerMapping = z
  .strictObject({
    set: z
      .record(headerName(), headerValue())
      .default({})
      .describe('Headers to set, replacing any of the same name.'),
    add: z
      .record(headerName(), headerValue())
      .default({})
      .describe('Headers to add beside any of the same name.'),
    remove: z.array(headerName()).default([]).describe('Header names to remove.'),
  })
  .prefault({});

const sideFields = {
  from: format
    .optional()
    .describe(
      'How the body is read: json, form (application/x-www-form-urlencoded) or xml. Default json when `body` or `to` is set; with none of from, to and body the body passes unchanged.',
    ),
  to: format.optional().describe('How the new body is written (and its Content-Type). Default json.'),
  body: z
    .string()
    .min(1)
    .optional()
    .describe(
      'A JSONata expression whose result is the new body; the body as read is its input. Without it the body is only converted (from → to).',
    ),
  headers: headerMapping.describe(
    'Headers set, added and removed after the body is rewritten. Content-Length is the adapter’s own; Content-Type follows `to` unless `set` names it.',
  ),
};

const requestSide = z
  .strictObject(sideFields)
  .describe(
    'Rewrites of the request before it is forwarded. The expression sees $method, $path, $query (an object) and $headers (lower-case names).',
  );

const STATUS = /^[1-5][0-9][0-9]$/;

const responseSide = z
  .strictObject({
    ...sideFields,
    status: z
      .record(z.string().regex(STATUS, 'a status code such as "200"'), z.number().int().min(200).max(599))
      .default({})
      .describe('Status codes mapped to others, e.g. { "200": 201, "404": 410 }.'),
  })
  .describe(
    'Rewrites of the response before it goes to the client. The expression sees $status, $headers (the response’s) and $request ({ method, path, query, headers }).',
  );

export const transformSchema = z
  .strictObject({
    maxBodyBytes: size({ min: '1B', max: '64MiB' })
      .prefault('1MiB')
      .describe(
        'Largest body buffered for a transformation: a request body over it gets 413, a response body over it 502.',
      ),
    request: requestSide.optional(),
    response: responseSide.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.request === undefined && t.response === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'a transform needs request or response',
        'e.g. request: { body: "{ \\"action\\": method, \\"payload\\": data }" }',
      );
  })
  .describe(
    'The API adapter: rewrite the request and response bodies with JSONata, convert form and XML to and from JSON, map status codes and headers. The bodies of this route are buffered (up to maxBodyBytes); other routes keep streaming.',
  );

export type TransformConfig = z.output<typeof transformSchema>;
export type RequestSideConfig = NonNullable<TransformConfig['request']>;
export type ResponseSideConfig = NonNullable<TransformConfig['response']>;
