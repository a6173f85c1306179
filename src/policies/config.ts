// The `policies:` section: Istio security and traffic resources to read as they are, and what
// Pillion needs to know to apply their selectors.

import { z } from 'zod';

export const policiesSchema = z
  .strictObject({
    istio: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'YAML files (relative to this file) of Istio resources, several documents per file allowed: PeerAuthentication, RequestAuthentication and AuthorizationPolicy (security.istio.io v1 or v1beta1), added to inbound.jwt, inbound.authorization and inbound.mtls; VirtualService and DestinationRule (networking.istio.io v1, v1beta1 or v1alpha3), added to outbound.routes and to the upstreams their hosts name. `pillion run --istio FILE` adds more.',
      ),
    workloadLabels: z
      .record(z.string(), z.string())
      .default({})
      .describe(
        'This workload’s labels (a Pod’s metadata.labels): a resource with selector.matchLabels applies only when all of them are here.',
      ),
    namespace: z
      .string()
      .optional()
      .describe(
        'This workload’s namespace: resources of other namespaces do not apply (those of rootNamespace always do). Default: every namespace applies.',
      ),
    rootNamespace: z
      .string()
      .default('istio-system')
      .describe('Istio’s root namespace: its resources apply to every workload.'),
  })
  .describe('Security and traffic policies written as Istio resources.');

export type PoliciesConfig = z.output<typeof policiesSchema>;
