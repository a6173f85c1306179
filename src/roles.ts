// The roles of Pillion that are planned but not built yet, with the config keys and commands they
// will bring. The loader and the CLI refuse these as "not built yet" rather than as typos, so a
// user who read about a feature learns that it is coming, not that they misspelled it.
// This is the place of the composition root (each role's name, schema and module); for now it
// holds only the one list that the config loader, the CLI and the README share.

export interface PlannedRole {
  /** What the role brings, in the words of the README's "What is coming". */
  readonly what: string;
  /** Top-level sections it adds. */
  readonly sections: readonly string[];
  /**
   * Keys it adds inside existing sections, as dotted paths: `[]` stands for any list item, `*`
   * for any name (an upstream's, say).
   */
  readonly keys: readonly string[];
  /** `pillion <command>`s it adds. */
  readonly commands: readonly string[];
}

const ROUTE_SECURITY = ['auth', 'jwt', 'authorization', 'rateLimit', 'rateLimits'];
const UPSTREAM_RESILIENCE = [
  'retries',
  'retryBudget',
  'timeout',
  'circuitBreaker',
  'circuitBreakers',
  'outlierDetection',
  'connectionPool',
  'loadBalancer',
  'loadBalancing',
  'healthCheck',
  'healthChecks',
  'subsets',
];
const ROUTE_RESILIENCE = ['retries', 'retryPolicy', 'timeout', 'circuitBreaker', 'mirror', 'fault', 'split'];

export const PLANNED_ROLES: readonly PlannedRole[] = [
  {
    what: 'inbound security (mutual TLS identities, JWT authentication, authorization, rate limits)',
    sections: ['policies'],
    keys: [
      ...[...ROUTE_SECURITY, 'authentication', 'mtls', 'peerAuthentication', 'extAuthz'].map(
        (k) => `inbound.${k}`,
      ),
      ...ROUTE_SECURITY.map((k) => `inbound.routes[].${k}`),
      'inbound.listeners[].mtls',
      'inbound.listeners[].peerAuthentication',
    ],
    commands: ['ca'],
  },
  {
    what: 'outbound resilience (retries, timeouts, circuit breaking, load balancing, traffic splits)',
    sections: [],
    keys: [
      ...ROUTE_RESILIENCE.map((k) => `inbound.routes[].${k}`),
      ...UPSTREAM_RESILIENCE.flatMap((k) => [`inbound.upstreams.*.${k}`, `outbound.upstreams.*.${k}`]),
      ...['retries', 'timeout', 'circuitBreaker'].map((k) => `outbound.${k}`),
    ],
    commands: [],
  },
  {
    what: "metrics (scrape and adapt the app's metrics, export and push; /top)",
    sections: ['metrics'],
    keys: ['inbound.routes[].transform'],
    commands: ['top'],
  },
  {
    what: "config sync's JSON Schema check of a rendered file and signal to a container of the same pod by name",
    sections: [],
    keys: [
      'sync.notify.*.container',
      'sync.destinations.*.check.schema',
      'sync.destinations.*.check.schemaFile',
    ],
    commands: [],
  },
  {
    what: 'Kubernetes injection (pillion inject, the admission webhook, iptables interception)',
    sections: [],
    keys: [],
    commands: ['inject', 'webhook', 'iptables'],
  },
];

type Segment = string | number;

/** The planned role a config key belongs to, or undefined when it is not a planned key. */
export function plannedKey(path: readonly Segment[]): PlannedRole | undefined {
  if (path.length === 1) return PLANNED_ROLES.find((r) => r.sections.includes(String(path[0])));
  return PLANNED_ROLES.find((r) => r.keys.some((k) => matches(k, path)));
}

/** The planned role a command belongs to, or undefined. */
export function plannedCommand(name: string): PlannedRole | undefined {
  return PLANNED_ROLES.find((r) => r.commands.includes(name));
}

function matches(pattern: string, path: readonly Segment[]): boolean {
  const parts = pattern.replaceAll('[]', '.[]').split('.');
  return (
    parts.length === path.length &&
    parts.every((p, i) => {
      const seg = path[i];
      if (p === '[]') return typeof seg === 'number';
      if (p === '*') return typeof seg === 'string';
      return p === seg;
    })
  );
}
