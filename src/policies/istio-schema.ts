// Istio's security resources as they are written (security.istio.io v1 and v1beta1): strict
// schemas, so a misspelt field is an error at its line:col, and the fields Pillion does not
// support are named as such rather than ignored.

import { z } from 'zod';
import { addPillionIssue } from '../config/index.js';
import { checkIpValues, ipBlockProblem, parseWhenKey } from '../proxy/filters/config.js';

export const API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'];
export const KINDS = ['PeerAuthentication', 'RequestAuthentication', 'AuthorizationPolicy'] as const;
export type Kind = (typeof KINDS)[number];

/** A field Istio has and Pillion does not: an error naming it, with why (security and traffic resources alike). */
export function unsupported(why: string) {
  return z
    .unknown()
    .optional()
    .superRefine((v, ctx) => {
      if (v !== undefined)
        addPillionIssue(ctx, 'PILLION_ERR_POLICY_UNSUPPORTED_FIELD', `not supported: ${why}`);
    });
}

const metadata = z
  .looseObject({
    name: z.string().min(1),
    namespace: z.string().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .describe(
    'Kubernetes metadata; fields other than name, namespace and annotations are ignored, as kubectl output carries them.',
  );

const selector = z
  .strictObject({
    matchLabels: z.record(z.string(), z.string()).default({}),
  })
  .optional();

const targetRef = unsupported(
  'Pillion applies policies by selector (policies.workloadLabels), not by a Gateway or Service targetRef',
);

const strings = z.array(z.string()).optional();
const blocks = z
  .array(
    z.string().superRefine((v, ctx) => {
      const p = ipBlockProblem(v);
      if (p !== undefined) addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', `"${v}" ${p}`);
    }),
  )
  .optional();
/** Istio writes ports as strings; a YAML number is taken too. */
const ports = z
  .array(z.union([z.string().regex(/^\d{1,5}$/), z.number().int().min(1).max(65535)]).transform(String))
  .optional();

const source = z.strictObject({
  principals: strings,
  notPrincipals: strings,
  requestPrincipals: strings,
  notRequestPrincipals: strings,
  namespaces: strings,
  notNamespaces: strings,
  ipBlocks: blocks,
  notIpBlocks: blocks,
  remoteIpBlocks: blocks,
  notRemoteIpBlocks: blocks,
  serviceAccounts: unsupported(
    'serviceAccounts (Istio 1.25+); use principals: [<trust-domain>/ns/<ns>/sa/<sa>]',
  ),
  notServiceAccounts: unsupported('notServiceAccounts; use notPrincipals'),
});

const operation = z.strictObject({
  hosts: strings,
  notHosts: strings,
  ports,
  notPorts: ports,
  methods: strings,
  notMethods: strings,
  paths: strings,
  notPaths: strings,
});

const condition = z
  .strictObject({
    key: z.string().superRefine((k, ctx) => {
      const r = parseWhenKey(k);
      if (typeof r === 'string') addPillionIssue(ctx, 'PILLION_ERR_POLICY_UNSUPPORTED_FIELD', r);
    }),
    values: strings,
    notValues: strings,
  })
  .superRefine(checkIpValues);

const rule = z.strictObject({
  from: z.array(z.strictObject({ source })).optional(),
  to: z.array(z.strictObject({ operation })).optional(),
  when: z.array(condition).optional(),
});

const authorizationPolicy = z.strictObject({
  selector,
  targetRef,
  targetRefs: targetRef,
  action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']).default('ALLOW'),
  provider: z.strictObject({ name: z.string().min(1) }).optional(),
  rules: z.array(rule).optional(),
});

const jwtRule = z.strictObject({
  issuer: z.string().min(1),
  audiences: z.array(z.string()).optional(),
  jwksUri: z.string().optional(),
  jwks: z.string().optional(),
  fromHeaders: z.array(z.strictObject({ name: z.string().min(1), prefix: z.string().optional() })).optional(),
  fromParams: z.array(z.string()).optional(),
  fromCookies: z.array(z.string()).optional(),
  outputPayloadToHeader: unsupported(
    'outputPayloadToHeader; copy the claims you need with outputClaimToHeaders',
  ),
  forwardOriginalToken: z.boolean().optional(),
  outputClaimToHeaders: z
    .array(z.strictObject({ header: z.string().min(1), claim: z.string().min(1) }))
    .optional(),
  timeout: z.string().optional(),
});

const requestAuthentication = z.strictObject({
  selector,
  targetRef,
  targetRefs: targetRef,
  jwtRules: z.array(jwtRule).default([]),
});

const mtlsMode = z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
const peerAuthentication = z.strictObject({
  selector,
  mtls: z.strictObject({ mode: mtlsMode.default('UNSET') }).optional(),
  portLevelMtls: z
    .record(z.string().regex(/^\d{1,5}$/), z.strictObject({ mode: mtlsMode.default('UNSET') }))
    .optional(),
});

function resource<S extends z.ZodType>(kind: Kind, spec: S) {
  return z.strictObject({
    apiVersion: z.enum(API_VERSIONS as [string, ...string[]]),
    kind: z.literal(kind),
    metadata,
    spec: spec.default({} as never),
    status: z.unknown().optional().describe('Ignored: written by the cluster, not by the user.'),
  });
}

export const ISTIO_SCHEMAS = {
  AuthorizationPolicy: resource('AuthorizationPolicy', authorizationPolicy),
  RequestAuthentication: resource('RequestAuthentication', requestAuthentication),
  PeerAuthentication: resource('PeerAuthentication', peerAuthentication),
};

export type AuthorizationPolicyResource = z.output<(typeof ISTIO_SCHEMAS)['AuthorizationPolicy']>;
export type RequestAuthenticationResource = z.output<(typeof ISTIO_SCHEMAS)['RequestAuthentication']>;
export type PeerAuthenticationResource = z.output<(typeof ISTIO_SCHEMAS)['PeerAuthentication']>;
