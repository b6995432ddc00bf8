#!/usr/bin/env -S node --initial-old-space-size=64
// The `synod` command: start a replica, talk to a cluster, run the demo.

import { Command, CommanderError } from 'commander';
import { benchCommand } from './bench.js';
import { certsCommand } from './certs.js';
import { clientCommands, ExitError, EXIT_USAGE } from './client-commands.js';
import { UsageError } from './config.js';
import { demoCommand } from './demo.js';
import { restoreCommand } from './restore.js';
import { startCommand } from './start.js';

const program = new Command('synod')
  .description('Synod: a replicated key-value store on multi-Paxos')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program.addCommand(startCommand());
for (const c of clientCommands()) program.addCommand(c);
program.addCommand(demoCommand());
program.addCommand(benchCommand());
program.addCommand(certsCommand());
program.addCommand(restoreCommand());
for (const c of program.commands) c.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander already printed the message (or the help).
    process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  if (e instanceof ExitError) {
    if (e.message) process.stderr.write(`${e.message}\n`);
    process.exit(e.exitCode);
  }
  if (e instanceof UsageError) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.SYNOD_DEBUG) console.error(e);
  process.exit(1);
}
