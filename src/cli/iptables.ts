// `pillion iptables --print|--apply`: the interception rules of a pod, printed for review or
// applied in the current network namespace (what the injected pillion-init container runs).

import { applyRules, iptablesRules, parsePlan } from '../inject/index.js';
import { PillionError } from '../lib/errors.js';

export interface IptablesOptions {
  print?: boolean;
  apply?: boolean;
  inboundPorts?: string;
  inboundPort: string;
  outboundPort: string;
  uid: string;
  excludeOutboundPorts?: string;
  excludeOutboundCidrs?: string;
}

export async function iptablesCommand(opts: IptablesOptions): Promise<number> {
  if (opts.print === opts.apply) {
    process.stderr.write('pillion iptables: PILLION_ERR_CLI_BAD_OPTION: give one of --print or --apply\n');
    return 1;
  }
  const parsed = parsePlan(opts);
  if (!parsed.ok) {
    for (const e of parsed.errors)
      process.stderr.write(`pillion iptables: PILLION_ERR_CLI_BAD_OPTION: ${e}\n`);
    return 1;
  }
  const rules = iptablesRules(parsed.plan);
  if (opts.print) {
    process.stdout.write(rules);
    return 0;
  }
  try {
    await applyRules(rules);
  } catch (err) {
    if (!(err instanceof PillionError)) throw err;
    process.stderr.write(`pillion iptables: ${err.code}: ${err.message}\n`);
    return 1;
  }
  process.stdout.write(rules);
  process.stderr.write('pillion iptables: rules applied\n');
  return 0;
}
