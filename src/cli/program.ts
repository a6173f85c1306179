// The `pillion` command line. Each subcommand lives in its own file, imported when that
// subcommand runs: `pillion validate` does not load the proxy, `pillion pod` not the runtime.

import { Command, Option } from 'commander';
import { PLANNED_ROLES } from '../roles.js';
// Not the runtime's index: that would load the runtime (and its dependencies) for every command.
import { LOG_LEVELS } from '../runtime/log-levels.js';
import { exitAfterFlush } from './exit.js';
import { VERSION } from './version.js';

const POD_DESCRIPTION =
  "run a Kubernetes Pod (or the pod template of a Job, Deployment, ReplicaSet, StatefulSet or DaemonSet) as local processes, with the kubelet's lifecycle";

const program = new Command()
  .name('pillion')
  .description(
    "A sidecar runtime: one process and one YAML file. Today: an inbound and outbound proxy (TLS, HTTP/1.1, HTTP/2, TCP) with workload identities and mutual TLS from a local CA (`pillion ca`), JWT authentication, authorization and rate limits (Istio security YAML read as it is), retries, timeouts, load balancing and circuit breaking to upstreams (Istio traffic YAML read as it is), a log shipper, config files kept current from files, HTTP, etcd, Consul and Vault (`sync:`), the app's metrics scraped, mapped and exposed (`metrics:`) with a process view (`/top`, `pillion top`), `pillion pod`, a local pod runner, and `pillion inject`, `pillion webhook` and `pillion iptables` to put pillion into Kubernetes pods.",
  )
  .version(VERSION)
  .showHelpAfterError()
  .addHelpText(
    'after',
    PLANNED_ROLES.length === 0
      ? ''
      : `\nPlanned, not built yet (their config keys and commands are refused as such until they land):\n${PLANNED_ROLES.map((r) => `  - ${r.what}`).join('\n')}\n`,
  );

program
  .command('run')
  .description('run the sidecar (SIGTERM/SIGINT drain and exit, SIGHUP reloads)')
  .option('-c, --config <file>', 'config file (default: $PILLION_CONFIG, else embedded defaults)')
  .option(
    '--istio <file>',
    'Istio security resources (PeerAuthentication, RequestAuthentication, AuthorizationPolicy) to apply, beside policies.istio; repeatable',
    (v: string, all: string[]) => [...all, v],
    [] as string[],
  )
  .addOption(new Option('--log-level <level>', 'override runtime.log.level').choices(LOG_LEVELS))
  .addOption(
    new Option('--log-format <format>', 'override runtime.log.format').choices(['auto', 'json', 'pretty']),
  )
  .option(
    '--probe-listen <address>',
    'also serve /healthz and /readyz alone on this address (e.g. :15021, for the kubelet), once every role has started',
  )
  .action(async (opts) => {
    // Exit even if something still holds the event loop: the runtime has drained and stopped.
    const { runCommand } = await import('./run.js');
    await exitAfterFlush(await runCommand(opts));
  });

program
  .command('validate')
  .description('check a config file; exit 0 when valid, 1 with every error (file:line:col) when not')
  .requiredOption('-c, --config <file>', 'config file')
  .option(
    '--istio <file>',
    'Istio security resources to check with it, as `run --istio` takes them; repeatable',
    (v: string, all: string[]) => [...all, v],
    [] as string[],
  )
  .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
  .action(async (opts) => {
    const { validateCommand } = await import('./validate.js');
    return finish(await validateCommand(opts));
  });

program
  .command('schema')
  .description('print the JSON Schema of pillion.yaml (for editors: # yaml-language-server: $schema=...)')
  .action(async () => {
    const { schemaCommand } = await import('./schema.js');
    return finish(await schemaCommand());
  });

// `pod` has subcommands of its own, defined with its code: that code is loaded only when the
// command line names `pod` (help for the other commands lists it by its description).
if (commandName(process.argv.slice(2)) === 'pod') {
  const { podCommand } = await import('./pod.js');
  program.addCommand(podCommand(finish).description(POD_DESCRIPTION));
} else {
  program.command('pod').description(POD_DESCRIPTION).argument('[command]');
}

program
  .command('sync')
  .description(
    "render every file of the config's sync section once and exit (an init container); `pillion run` keeps them current",
  )
  .requiredOption('--once', 'render once and exit (0 when every file is in place, 1 naming each failure)')
  .requiredOption('-c, --config <file>', 'config file')
  .addOption(new Option('--log-level <level>', 'override runtime.log.level').choices(LOG_LEVELS))
  .addOption(
    new Option('--log-format <format>', 'override runtime.log.format').choices(['auto', 'json', 'pretty']),
  )
  .action(async (opts) => {
    const { syncCommand } = await import('./sync.js');
    return finish(await syncCommand(opts));
  });

program
  .command('top')
  .description(
    "a live view of a running sidecar's host and processes, like top (reads the admin API's GET /top)",
  )
  .option('--admin <address>', 'the admin address of the sidecar', '127.0.0.1:15000')
  .addOption(new Option('--sort <key>', 'sort processes by').choices(['cpu', 'mem', 'pid']).default('cpu'))
  .option('--limit <n>', 'show at most this many processes')
  .addOption(
    new Option(
      '--scope <scope>',
      'which processes (default: the pod under pillion pod, else the sidecar and its children)',
    ).choices(['pod', 'self', 'all']),
  )
  .option('--interval <duration>', 'refresh interval', '2s')
  .option('--once', 'print one view and exit (no terminal control)')
  .action(async (opts) => {
    const { topCommand } = await import('./top.js');
    return finish(await topCommand(opts));
  });

const CA_DESCRIPTION =
  'a local certificate authority for workload identities (SPIFFE IDs): create it, issue certificates, print its trust bundle';
if (commandName(process.argv.slice(2)) === 'ca') {
  const { caCommand } = await import('./ca.js');
  program.addCommand(caCommand(finish).description(CA_DESCRIPTION));
} else {
  program.command('ca').description(CA_DESCRIPTION).argument('[command]');
}

program
  .command('inject')
  .description(
    'add pillion to the pods of Kubernetes manifests (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, List), as istioctl kube-inject does; writes them to stdout',
  )
  .requiredOption('-f, --filename <file>', 'the manifests (multi-document YAML); - reads stdin')
  .option(
    '-c, --config <file>',
    "the sidecar's pillion.yaml: validated, then added as the ConfigMap the sidecar mounts",
  )
  .option(
    '--injector-config <file>',
    "the injector's settings (image, resources, mode, ports), as the webhook reads them",
  )
  .option(
    '--legacy-sidecar',
    'for clusters before 1.29: a regular container first, holding the app until pillion has started',
  )
  .action(async (opts) => {
    const { injectCommand } = await import('./inject.js');
    return finish(await injectCommand(opts));
  });

program
  .command('webhook')
  .description(
    'the mutating admission webhook: injects pillion into the Pods the API server sends it (AdmissionReview v1 over HTTPS)',
  )
  .requiredOption('--cert <file>', 'TLS certificate (PEM) the API server verifies; reloaded when it changes')
  .requiredOption('--key <file>', 'its private key (PEM)')
  .option(
    '-c, --config <file>',
    "the injector's settings (sidecar image, resources, mode, policy, webhook limits)",
  )
  .option('--listen <address>', 'override webhook.listen (default :9443)')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
  .addOption(new Option('--log-format <format>', 'log format').choices(['auto', 'json', 'pretty']))
  .action(async (opts) => {
    const { webhookCommand } = await import('./webhook.js');
    return finish(await webhookCommand(opts));
  });

program
  .command('iptables')
  .description(
    "redirect a pod's TCP through pillion (Istio's istio-init): inbound for the app's ports to the inbound listener, outbound to the outbound listener, pillion's own user exempt",
  )
  .option('--print', 'print the rules (iptables-restore input) and exit')
  .option(
    '--apply',
    'apply them in this network namespace (needs NET_ADMIN); what the pillion-init container runs',
  )
  .option(
    '--inbound-ports <ports>',
    "the app's ports whose inbound TCP is redirected, comma-separated (none: inbound untouched)",
  )
  .option('--inbound-port <port>', "pillion's inbound listener", '15006')
  .option('--outbound-port <port>', "pillion's outbound listener", '15001')
  .option('--uid <uid>', 'the user pillion runs as; its traffic is never redirected', '1337')
  .option('--exclude-outbound-ports <ports>', 'outbound TCP ports left alone, comma-separated')
  .option('--exclude-outbound-cidrs <cidrs>', 'outbound destinations left alone, comma-separated IPv4 CIDRs')
  .action(async (opts) => {
    const { iptablesCommand } = await import('./iptables.js');
    return finish(await iptablesCommand(opts));
  });

// Commands of planned roles answer that they are coming, not "unknown command".
for (const role of PLANNED_ROLES) {
  for (const name of role.commands) {
    program
      .command(name, { hidden: true })
      .argument('[args...]')
      .allowUnknownOption()
      .action(() => {
        process.stderr.write(
          `pillion ${name}: PILLION_ERR_CLI_NOT_BUILT_YET: planned but not built yet: ${role.what} (see pillion --help for what exists today)\n`,
        );
        return finish(1);
      });
  }
}

/** The subcommand a command line names (`pillion help pod` names pod), skipping global options. */
function commandName(args: readonly string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith('-'));
  return words[0] === 'help' ? words[1] : words[0];
}

function finish(code: number): Promise<never> {
  return exitAfterFlush(code);
}

await program.parseAsync(process.argv);
