#!/usr/bin/env -S node --single-threaded-gc
// The `pillion` command. Each subcommand lives in its own file.
// The V8 flag suits a sidecar: collecting on the main thread spares a wake-up of helper threads
// per collection, which costs a proxy more than it saves. The young generation keeps its default
// size: a small one promotes the log role's in-flight events and costs it more memory, not less
// (see README, Performance).

import { Command, Option } from 'commander';
import { LOG_LEVELS } from '../runtime/index.js';
import { exitAfterFlush } from './exit.js';
import { podCommand } from './pod.js';
import { runCommand } from './run.js';
import { schemaCommand } from './schema.js';
import { validateCommand } from './validate.js';
import { VERSION } from './version.js';

const program = new Command()
  .name('pillion')
  .description(
    'A sidecar runtime: one process and one YAML file for TLS, auth, rate limits, resilient outbound calls, logs, metrics and config sync.',
  )
  .version(VERSION)
  .showHelpAfterError();

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

program.addCommand(podCommand(finish));

function finish(code: number): Promise<never> {
  return exitAfterFlush(code);
}

await program.parseAsync(process.argv);
