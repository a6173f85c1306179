// `pillion ca init|issue|bundle`: a local CA for workload certificates (SPIFFE X.509-SVIDs), so
// two sidecars can speak mutual TLS on any host without a mesh's control plane.

import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { writeFileAtomicSync } from '../lib/atomic-write.js';
import { parseDuration } from '../lib/duration.js';
import { PillionError } from '../lib/errors.js';

interface DirOpts {
  dir?: string;
}

export function caCommand(done: (code: number) => void): Command {
  const finish = (command: () => Promise<number>) =>
    void command().then(done, (err: unknown) => {
      if (!(err instanceof PillionError)) throw err;
      process.stderr.write(`pillion ca: ${err.code}: ${err.message}\n`);
      done(1);
    });
  const dirOpt = () =>
    new Option('--dir <dir>', 'the CA directory (ca.crt, and ca.key readable by its owner only)')
      .env('PILLION_CA_DIR')
      .default('pillion-ca');
  const ca = new Command('ca').description(
    'a local certificate authority for workload identities (SPIFFE IDs): create it, issue certificates, print its trust bundle',
  );

  ca.command('init')
    .description('create a CA: an ECDSA P-256 root certificate and its key (mode 0600)')
    .addOption(dirOpt())
    .option('--trust-domain <name>', 'the SPIFFE trust domain it signs for', 'cluster.local')
    .option('--ttl <duration>', 'lifetime of the CA certificate', '87600h')
    .option('--force', 'replace a CA that is already in the directory')
    .action((opts: DirOpts & { trustDomain: string; ttl: string; force?: boolean }) =>
      finish(async () => {
        const { LocalCa } = await (await import('../identity/index.js')).loadLocalCa();
        const dir = resolve(opts.dir!);
        const ca = await LocalCa.init(dir, {
          trustDomain: opts.trustDomain,
          ttlMs: durationOption('--ttl', opts.ttl),
          force: opts.force === true,
        });
        process.stdout.write(
          `created CA for trust domain ${ca.trustDomain} in ${dir} (valid until ${ca.notAfter.toISOString()})\n`,
        );
        return 0;
      }),
    );

  ca.command('issue')
    .description('issue a workload certificate for a SPIFFE ID; writes <out>.crt and <out>.key (mode 0600)')
    .addOption(dirOpt())
    .requiredOption('--identity <spiffe-id>', 'spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>')
    .option('--ttl <duration>', 'lifetime of the certificate', '24h')
    .option('--dns <name...>', 'DNS names to add, for clients that check a host name (curl, browsers)')
    .option('--out <prefix>', 'file prefix of the certificate and key', 'workload')
    .action((opts: DirOpts & { identity: string; ttl: string; dns?: string[]; out: string }) =>
      finish(async () => {
        const { LocalCa } = await (await import('../identity/index.js')).loadLocalCa();
        const ca = await LocalCa.open(resolve(opts.dir!));
        const issued = await ca.issue({
          spiffeId: opts.identity,
          ttlMs: durationOption('--ttl', opts.ttl),
          dnsNames: opts.dns ?? [],
        });
        const out = resolve(opts.out);
        writeFileAtomicSync(`${out}.key`, issued.key, { mode: 0o600 });
        writeFileAtomicSync(`${out}.crt`, issued.cert, { mode: 0o644 });
        process.stdout.write(
          `issued ${issued.spiffeId} (serial ${issued.serial}, valid until ${issued.notAfter.toISOString()}): ${out}.crt, ${out}.key\n`,
        );
        return 0;
      }),
    );

  ca.command('bundle')
    .description('print the trust bundle (the CA certificate, PEM) for peers to verify with')
    .addOption(dirOpt())
    .action((opts: DirOpts) =>
      finish(async () => {
        const { LocalCa } = await (await import('../identity/index.js')).loadLocalCa();
        const ca = await LocalCa.open(resolve(opts.dir!));
        process.stdout.write(ca.bundle);
        return 0;
      }),
    );
  return ca;
}

function durationOption(name: string, text: string): number {
  const d = parseDuration(text);
  if (!d.ok || d.value <= 0)
    throw new PillionError(
      'PILLION_ERR_CLI_BAD_OPTION',
      `${name} ${text}: ${d.ok ? 'must be more than 0' : d.reason} (e.g. 24h, 90m)`,
    );
  return d.value;
}
