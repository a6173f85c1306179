// Traffic interception as Istio's istio-init does it: nat rules that redirect the pod's inbound
// TCP for the app's ports to pillion's inbound listener and the app's outbound TCP to pillion's
// outbound listener, with pillion's own user exempt so its connections never come back to it.
// The rules are iptables-restore input; `pillion iptables --print` shows them and `--apply` (what
// the init container runs) feeds them to iptables-restore in the pod's network namespace.

import { spawn } from 'node:child_process';
import { PillionError } from '../lib/errors.js';

export interface InterceptionPlan {
  /** App ports whose inbound connections go to pillion's inbound listener (none: inbound untouched). */
  inboundPorts: number[];
  inboundPort: number;
  outboundPort: number;
  /** User and group pillion runs as: their traffic is left alone. */
  uid: number;
  excludeOutboundPorts: number[];
  excludeOutboundCidrs: string[];
}

export const CHAINS = [
  'PILLION_INBOUND',
  'PILLION_IN_REDIRECT',
  'PILLION_OUTPUT',
  'PILLION_REDIRECT',
] as const;

/** The rules, as iptables-restore reads them (IPv4, nat table). */
export function iptablesRules(plan: InterceptionPlan): string {
  const lines = ['*nat', ...CHAINS.map((c) => `:${c} - [0:0]`)];
  if (plan.inboundPorts.length > 0) {
    lines.push('-A PREROUTING -p tcp -j PILLION_INBOUND');
    for (const port of plan.inboundPorts)
      lines.push(`-A PILLION_INBOUND -p tcp --dport ${port} -j PILLION_IN_REDIRECT`);
    lines.push(`-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${plan.inboundPort}`);
  }
  lines.push(
    '-A OUTPUT -p tcp -j PILLION_OUTPUT',
    // pillion's own connections (to the app, to upstreams) go where they were sent: no loop.
    `-A PILLION_OUTPUT -m owner --uid-owner ${plan.uid} -j RETURN`,
    `-A PILLION_OUTPUT -m owner --gid-owner ${plan.uid} -j RETURN`,
    // Inside the pod (the app's own loopback, pillion's listeners) nothing is intercepted.
    '-A PILLION_OUTPUT -o lo -j RETURN',
    '-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN',
  );
  for (const port of plan.excludeOutboundPorts)
    lines.push(`-A PILLION_OUTPUT -p tcp --dport ${port} -j RETURN`);
  for (const cidr of plan.excludeOutboundCidrs) lines.push(`-A PILLION_OUTPUT -d ${cidr} -j RETURN`);
  lines.push(
    '-A PILLION_OUTPUT -j PILLION_REDIRECT',
    `-A PILLION_REDIRECT -p tcp -j REDIRECT --to-ports ${plan.outboundPort}`,
    'COMMIT',
  );
  return `${lines.join('\n')}\n`;
}

/** The arguments of `pillion iptables` that give this plan (what the init container runs). */
export function planArgs(plan: InterceptionPlan): string[] {
  const args = [
    '--inbound-port',
    String(plan.inboundPort),
    '--outbound-port',
    String(plan.outboundPort),
    '--uid',
    String(plan.uid),
  ];
  if (plan.inboundPorts.length) args.push('--inbound-ports', plan.inboundPorts.join(','));
  if (plan.excludeOutboundPorts.length)
    args.push('--exclude-outbound-ports', plan.excludeOutboundPorts.join(','));
  if (plan.excludeOutboundCidrs.length)
    args.push('--exclude-outbound-cidrs', plan.excludeOutboundCidrs.join(','));
  return args;
}

/** Reads `pillion iptables` options into a plan, or says what is wrong with them. */
export function parsePlan(opts: {
  inboundPorts?: string | undefined;
  inboundPort: string;
  outboundPort: string;
  uid: string;
  excludeOutboundPorts?: string | undefined;
  excludeOutboundCidrs?: string | undefined;
}): { ok: true; plan: InterceptionPlan } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const port = (flag: string, text: string): number => {
    const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
    if (!(n >= 1 && n <= 65535)) errors.push(`${flag}: "${text}" is not a port number`);
    return n;
  };
  const list = (flag: string, text: string | undefined) =>
    (text ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((p) => port(flag, p));
  const uid = /^\d+$/.test(opts.uid) ? Number(opts.uid) : NaN;
  if (!(uid >= 1))
    errors.push(`--uid: "${opts.uid}" is not a user id above 0 (root's traffic must stay intercepted)`);
  const cidrs = (opts.excludeOutboundCidrs ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const c of cidrs)
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(c))
      errors.push(`--exclude-outbound-cidrs: "${c}" is not an IPv4 CIDR`);
  const plan: InterceptionPlan = {
    inboundPorts: list('--inbound-ports', opts.inboundPorts),
    inboundPort: port('--inbound-port', opts.inboundPort),
    outboundPort: port('--outbound-port', opts.outboundPort),
    uid,
    excludeOutboundPorts: list('--exclude-outbound-ports', opts.excludeOutboundPorts),
    excludeOutboundCidrs: cidrs,
  };
  if (plan.inboundPorts.includes(plan.inboundPort))
    errors.push(
      `--inbound-ports: ${plan.inboundPort} is pillion's inbound listener; redirecting it would loop`,
    );
  return errors.length ? { ok: false, errors } : { ok: true, plan };
}

/** Feeds the rules to iptables-restore (in the caller's network namespace); resolves when applied. */
export function applyRules(rules: string, command = 'iptables-restore'): Promise<void> {
  return new Promise((resolve, reject) => {
    // --noflush keeps the table's other rules; -w waits for the xtables lock instead of failing.
    const child = spawn(command, ['--noflush', '-w', '5'], { stdio: ['pipe', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new PillionError(
          'PILLION_ERR_INJECT_IPTABLES',
          err.code === 'ENOENT' ? `${command} not found: the image needs the iptables package` : err.message,
        ),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new PillionError(
            'PILLION_ERR_INJECT_IPTABLES',
            `${command} exited ${code}: ${stderr.trim() || 'no message'} (the init container needs NET_ADMIN and NET_RAW)`,
          ),
        );
    });
    child.stdin.end(rules);
  });
}
