#!/usr/bin/env -S node --single-threaded-gc
// The `pillion` command. Each subcommand lives in its own file.
// The V8 flag suits a sidecar: collecting on the main thread spares a wake-up of helper threads
// per collection, which costs a proxy more than it saves. The young generation keeps its default
// size: a small one promotes the log role's in-flight events and costs it more memory, not less
// (see README, Performance).

import { Command, Option } from 'commander';
import { PLANNED_ROLES } from '../roles.js';
import { LOG_LEVELS } from '../runtime/index.js';
import { exitAfterFlush } from './exit.js';
import { podCommand } from './pod.js';
import { runCommand } from './run.js';
import { schemaCommand } from './schema.js';
import { syncCommand } from './sync.js';
import { validateCommand } from './validate.js';
import { VERSION } from './version.js';

const program = new Command()
  .name('pillion')
  .description(
    'A sidecar runtime: one process and one YAML file. Today: an inbound and outbound proxy (TLS, HTTP/1.1, HTTP/2, TCP), a log shipper, config files kept current from files, HTTP, etcd, Consul and Vault (`sync:`), and `pillion pod`, a local pod runner.',
  )
  .version(VERSION)
  .showHelpAfterError()
  .addHelpText(
    'after',
    `\nPlanned, not built yet (their config keys and commands are refused as such until they land):\n${PLANNED_ROLES.map((r) => `  - ${r.what}`).join('\n')}\n`,
  );

program
  .command('run')
  .description('run the sidecar (SIGTERM/SIGINT drain and exit, SIGHUP reloads)')
  .option('-c, --config <file>', 'config file (default: $PILLION_CONFIG, else embedded defaults)')
  .addOption(new Option('--log-level <level>', 'override runtime.log.level').choices(LOG_LEVELS))
  .addOption(
    new Option('--log-format <format>', 'override runtime.log.format').choices(['auto', 'json', 'pretty']),
  )
  .action(async (opts) => {
    // Exit even if something still holds the event loop: the runtime has drained and stopped.
    await exitAfterFlush(await runCommand(opts));
  });

program
  .command('validate')
  .description('check a config file; exit 0 when valid, 1 with every error (file:line:col) when not')
  .requiredOption('-c, --config <file>', 'config file')
  .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
  .action(async (opts) => finish(await validateCommand(opts)));

program
  .command('schema')
  .description('print the JSON Schema of pillion.yaml (for editors: # yaml-language-server: $schema=...)')
  .action(() => finish(schemaCommand()));

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
  .action(async (opts) => finish(await syncCommand(opts)));

program.addCommand(podCommand(finish));

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

function finish(code: number): Promise<never> {
  return exitAfterFlush(code);
}

await program.parseAsync(process.argv);
