// Istio's traffic resources as they are written (networking.istio.io v1, v1beta1, v1alpha3):
// VirtualService and DestinationRule, with strict schemas so a misspelt field is an error at its
// line:col, and the fields Pillion does not support named as such rather than ignored.

import { z } from 'zod';
import { addPillionIssue } from '../config/index.js';
import { unsupported } from './istio-schema.js';

export const TRAFFIC_API_VERSIONS = [
  'networking.istio.io/v1',
  'networking.istio.io/v1beta1',
  'networking.istio.io/v1alpha3',
];
export const TRAFFIC_KINDS = ['VirtualService', 'DestinationRule'] as const;
export type TrafficKind = (typeof TRAFFIC_KINDS)[number];

const metadata = z.looseObject({
  name: z.string().min(1),
  namespace: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** Istio's StringMatch: one of exact, prefix, regex. */
const stringMatch = z
  .strictObject({ exact: z.string().optional(), prefix: z.string().optional(), regex: z.string().optional() })
  .superRefine((m, ctx) => {
    const n = Number(m.exact !== undefined) + Number(m.prefix !== undefined) + Number(m.regex !== undefined);
    if (n !== 1)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'a match has one of exact, prefix or regex');
  });

const percent = z.strictObject({ value: z.number().min(0).max(100) });

const headerOps = z.strictObject({
  set: z.record(z.string(), z.string()).optional(),
  add: z.record(z.string(), z.string()).optional(),
  remove: z.array(z.string()).optional(),
});

const destination = z.strictObject({
  host: z.string().min(1),
  subset: z.string().optional(),
  port: z.strictObject({ number: z.number().int().min(1).max(65535) }).optional(),
});

const matchRequest = z.strictObject({
  name: z.string().optional(),
  uri: stringMatch.optional(),
  method: stringMatch.optional(),
  headers: z.record(z.string(), stringMatch).optional(),
  queryParams: z.record(z.string(), stringMatch).optional(),
  authority: unsupported('authority matches; the VirtualService hosts choose the upstream'),
  scheme: unsupported('scheme matches'),
  port: unsupported('port matches'),
  sourceLabels: unsupported('sourceLabels: the sidecar serves one workload'),
  gateways: unsupported('gateways'),
  sourceNamespace: unsupported('sourceNamespace'),
  withoutHeaders: unsupported('withoutHeaders; use a header match with a regex'),
  ignoreUriCase: unsupported('ignoreUriCase'),
  statPrefix: unsupported('statPrefix'),
});

const httpRoute = z.strictObject({
  name: z.string().optional(),
  match: z.array(matchRequest).optional(),
  route: z
    .array(
      z.strictObject({
        destination,
        weight: z.number().int().min(0).max(100).optional(),
        headers: z.strictObject({ request: headerOps.optional(), response: headerOps.optional() }).optional(),
      }),
    )
    .min(1),
  timeout: z.string().optional(),
  retries: z
    .strictObject({
      attempts: z.number().int().min(0).max(10),
      perTryTimeout: z.string().optional(),
      retryOn: z.string().optional(),
      retryRemoteLocalities: unsupported('retryRemoteLocalities'),
    })
    .optional(),
  fault: z
    .strictObject({
      delay: z
        .strictObject({
          fixedDelay: z.string(),
          percentage: percent.optional(),
          percent: unsupported('percent (deprecated); use percentage.value'),
        })
        .optional(),
      abort: z
        .strictObject({
          httpStatus: z.number().int().min(200).max(599),
          percentage: percent.optional(),
          grpcStatus: unsupported('grpcStatus'),
          http2Error: unsupported('http2Error'),
        })
        .optional(),
    })
    .optional(),
  mirror: destination.optional(),
  mirrorPercentage: percent.optional(),
  mirrors: unsupported('mirrors (several); use mirror'),
  mirrorPercent: unsupported('mirrorPercent (deprecated); use mirrorPercentage'),
  headers: z.strictObject({ request: headerOps.optional(), response: headerOps.optional() }).optional(),
  rewrite: z
    .strictObject({ uri: z.string().optional(), authority: unsupported('authority rewrites') })
    .optional(),
  redirect: unsupported('redirect'),
  directResponse: unsupported('directResponse; use a pillion route with directResponse'),
  delegate: unsupported('delegate'),
  corsPolicy: unsupported('corsPolicy'),
});

const virtualService = z.strictObject({
  hosts: z.array(z.string().min(1)).min(1),
  gateways: unsupported('gateways: the sidecar is the mesh gateway of its workload'),
  http: z.array(httpRoute).default([]),
  tls: unsupported('tls routes'),
  tcp: unsupported('tcp routes'),
  exportTo: unsupported('exportTo'),
});

const duration = z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'a duration such as 30s');

const trafficPolicy = z.strictObject({
  loadBalancer: z
    .strictObject({
      simple: z.enum(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'LEAST_CONN', 'UNSPECIFIED']).optional(),
      consistentHash: z
        .strictObject({
          httpHeaderName: z.string().optional(),
          httpCookie: z
            .strictObject({
              name: z.string().min(1),
              path: z.string().optional(),
              ttl: z.string().optional(),
            })
            .optional(),
          useSourceIp: z.boolean().optional(),
          ringHash: z.strictObject({ minimumRingSize: z.number().int().min(1).optional() }).optional(),
          maglev: z
            .strictObject({ tableSize: unsupported('tableSize: the Maglev table has 65537 slots') })
            .optional(),
          minimumRingSize: unsupported('minimumRingSize (deprecated); use ringHash'),
          httpQueryParameterName: unsupported('httpQueryParameterName'),
        })
        .optional(),
      localityLbSetting: unsupported('localityLbSetting'),
      warmupDurationSecs: unsupported('warmupDurationSecs'),
    })
    .optional(),
  connectionPool: z
    .strictObject({
      tcp: z
        .strictObject({
          maxConnections: z.number().int().min(1).optional(),
          connectTimeout: unsupported("connectTimeout; pillion's is timeouts.upstreamConnect of the section"),
          tcpKeepalive: unsupported('tcpKeepalive'),
          maxConnectionDuration: unsupported('maxConnectionDuration'),
          idleTimeout: unsupported('idleTimeout; use pool.idleTimeout'),
        })
        .optional(),
      http: z
        .strictObject({
          http1MaxPendingRequests: z.number().int().min(0).optional(),
          http2MaxRequests: z.number().int().min(0).optional(),
          maxRequestsPerConnection: z.number().int().min(0).optional(),
          maxRetries: z.number().int().min(0).optional(),
          idleTimeout: duration.optional(),
          // DEFAULT (the mesh default, DO_NOT_UPGRADE) and DO_NOT_UPGRADE keep HTTP/1.1 to the
          // upstream; UPGRADE makes it protocol: h2 (every client's requests over its HTTP/2 sessions).
          h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
          useClientProtocol: unsupported('useClientProtocol'),
          maxConcurrentStreams: unsupported('maxConcurrentStreams'),
        })
        .optional(),
    })
    .optional(),
  outlierDetection: z
    .strictObject({
      consecutive5xxErrors: z.number().int().min(0).optional(),
      consecutiveGatewayErrors: z.number().int().min(0).optional(),
      consecutiveLocalOriginFailures: z.number().int().min(0).optional(),
      splitExternalLocalOriginErrors: z.boolean().optional(),
      interval: duration.optional(),
      baseEjectionTime: duration.optional(),
      maxEjectionPercent: z.number().min(0).max(100).optional(),
      minHealthPercent: z.number().min(0).max(100).optional(),
      consecutiveErrors: unsupported('consecutiveErrors (deprecated); use consecutive5xxErrors'),
    })
    .optional(),
  tls: z
    .strictObject({
      mode: z.enum(['DISABLE', 'SIMPLE', 'ISTIO_MUTUAL', 'MUTUAL']),
      sni: z.string().optional(),
      subjectAltNames: z.array(z.string()).optional(),
      caCertificates: z.string().optional(),
      insecureSkipVerify: z.boolean().optional(),
      clientCertificate: unsupported(
        "clientCertificate: mutual TLS uses the workload's certificate (ISTIO_MUTUAL)",
      ),
      privateKey: unsupported("privateKey: mutual TLS uses the workload's certificate (ISTIO_MUTUAL)"),
      credentialName: unsupported('credentialName'),
    })
    .optional(),
  portLevelSettings: unsupported('portLevelSettings'),
  tunnel: unsupported('tunnel'),
  proxyProtocol: unsupported('proxyProtocol'),
  retryBudget: unsupported("retryBudget (Istio 1.26+); set the upstream's retryBudget in pillion.yaml"),
});

const destinationRule = z.strictObject({
  host: z.string().min(1),
  trafficPolicy: trafficPolicy.optional(),
  subsets: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        labels: z.record(z.string(), z.string()).default({}),
        trafficPolicy: unsupported("a subset's own trafficPolicy; set it on the DestinationRule"),
      }),
    )
    .optional(),
  exportTo: unsupported('exportTo'),
  workloadSelector: unsupported('workloadSelector'),
});

function resource<S extends z.ZodType>(kind: TrafficKind, spec: S) {
  return z.strictObject({
    apiVersion: z.enum(TRAFFIC_API_VERSIONS as [string, ...string[]]),
    kind: z.literal(kind),
    metadata,
    spec,
    status: z.unknown().optional(),
  });
}

export const TRAFFIC_SCHEMAS = {
  VirtualService: resource('VirtualService', virtualService),
  DestinationRule: resource('DestinationRule', destinationRule),
};

export type VirtualServiceResource = z.output<(typeof TRAFFIC_SCHEMAS)['VirtualService']>;
export type DestinationRuleResource = z.output<(typeof TRAFFIC_SCHEMAS)['DestinationRule']>;
