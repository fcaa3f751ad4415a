/**
 * `npx kv-rotator <command>`: the operator's CLI, a second thin entry point over shared/ beside
 * functions/. Exit codes: 0 ok, 1 findings or failure, 2 usage.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../shared/errors';
import { redactError } from '../shared/redact';
import type { FederationCheckOptions } from './federation';
import type { InventoryOptions } from './inventory';
import type { OnboardOptions } from './onboard';
import { progress as makeProgress, UsageError, type CommandResult, type Progress } from './output';
import type { Operation } from './rotate';
import type { Target, TargetOptions } from './target';

interface Common extends TargetOptions {
  json?: boolean;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  progress(): Progress;
  /** Opens the target; tests pass their own local Azure. */
  open(options: TargetOptions): Promise<Target>;
}

const defaultIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  progress: () => makeProgress(),
  // Commands load their modules (and the Azure SDKs) only when they run: --help stays quick.
  open: async (options) => (await import('./target')).openTarget(options),
};

/** Builds the program; `run` resolves to the exit code (commander never exits the process itself). */
export function buildProgram(io: Io = defaultIo): { program: Command; run(argv: string[]): Promise<number> } {
  let exitCode = 0;
  const program = new Command('kv-rotator')
    .description(
      'Operate the Key Vault credential rotator: what expires, what the next scan does, rotate now, opt secrets in, check the setup and workload identity federation.\n' +
        'Runs against a running `npm start`, else an embedded local Azure with the demo tenant; --settings points it at a real tenant.',
    )
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();

  /** Options every command has, and the runner that opens the target and prints the result. */
  const command = (name: string, parent: Command = program) =>
    parent
      .command(name)
      .option('--settings <file>', 'a real tenant: local.settings.json Values, DefaultAzureCredential')
      .option('--embedded', 'ignore a running npm start; start an embedded local Azure with the demo tenant')
      .option('--json', 'machine-readable output on stdout')
      .exitOverride()
      .configureOutput({ writeOut: io.out, writeErr: io.err });

  // Commander passes the positional arguments, then the options, then the command.
  const action =
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each command types its own arguments
    (fn: (target: Target, progress: Progress, ...args: any[]) => Promise<CommandResult>) =>
      async (...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const o = cmd.opts<Common>();
        if (o.settings && o.embedded) throw new UsageError('--settings and --embedded exclude each other');
        const progress = o.json ? { step: () => undefined, done: () => undefined } : io.progress();
        progress.step('connecting');
        let target: Target;
        try {
          target = await io.open({ settings: o.settings, embedded: o.embedded });
        } catch (e) {
          progress.done();
          // Invalid settings are doctor's first finding, each with its fix; other commands just stop.
          if (!(e instanceof ConfigError) || cmd.name() !== 'doctor') throw e;
          const { settingsChecks } = await import('./doctor');
          const result = settingsChecks(e);
          io.out(o.json ? `${JSON.stringify(result.data, null, 2)}\n` : `${result.text.join('\n')}\n`);
          exitCode = result.exitCode;
          return;
        }
        try {
          const result = await fn(target, progress, ...args.slice(0, -1));
          progress.done();
          io.out(o.json ? `${JSON.stringify(result.data, null, 2)}\n` : `${result.text.join('\n')}\n`);
          exitCode = result.exitCode;
        } finally {
          progress.done();
          await target.close();
        }
      };

  command('inventory')
    .description('every secret of every vault, joined with the providers’ credentials, flags and advice')
    .option('--vault <name>', 'only this vault')
    .addOption(
      new Option('--kind <kind>', 'only this kind').choices([
        'databricks-pat',
        'databricks-sp-secret',
        'entra-app-secret',
      ]),
    )
    .option('--expiring-within <duration>', 'only what expires within e.g. 30d, 12h')
    .action(action(async (t, p, o: InventoryOptions) => (await import('./inventory')).inventory(t, o, p)));

  command('plan')
    .description('exactly what the next scan would enqueue and announce, and why (no writes)')
    .action(action(async (t, p) => (await import('./plan')).plan(t, p)));

  const operation = (name: Operation, description: string) => {
    const cmd = command(name)
      .description(description)
      .argument('<vault/secret>', 'the secret, e.g. kv-apps/reporting-app-secret')
      .option('--dry-run', 'plan and report, change nothing (runs here even against a deployed service)')
      .option('--timeout <seconds>', 'how long to wait for a deployed service', '120');
    if (name === 'rotate')
      cmd.option('--force', 'rotate even if not due (a leak); also revokes a previous credential in grace');
    cmd.action(
      action(async (t, p, ref: string, o: { force?: boolean; dryRun?: boolean; timeout: string }) => {
        const timeoutSeconds = Number(o.timeout);
        if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0)
          throw new UsageError(`--timeout must be seconds, not ${o.timeout}`);
        const { runOperation } = await import('./rotate');
        return runOperation(t, name, ref, { force: o.force, dryRun: o.dryRun, timeoutSeconds }, p);
      }),
    );
  };
  operation(
    'rotate',
    'rotate one secret now: a new credential, stored as a new version (prints its version and expiry, never the value)',
  );
  operation('revoke-previous', 'revoke the previous credential of a secret once its grace period is over');
  operation(
    'reconcile',
    'revoke credentials this service created for a secret that the vault no longer references',
  );

  command('onboard')
    .description(
      'opt a secret in: checks the tags with the service’s policy, writes them, says what the target’s admin must add',
    )
    .argument('<vault/secret>', 'the secret, e.g. kv-apps/reporting-app-secret')
    .addOption(
      new Option('--kind <kind>', 'the credential kind')
        .choices(['databricks-pat', 'databricks-sp-secret', 'entra-app-secret'])
        .makeOptionMandatory(),
    )
    .option('--databricks-host <host>', 'databricks-pat: the workspace host')
    .option('--pat-owner <appId>', 'databricks-pat: the service principal that owns the PAT')
    .option('--account-id <id>', 'databricks-sp-secret: the Databricks account id')
    .option('--sp-id <id>', 'databricks-sp-secret: the service principal id')
    .option('--app-id <appId>', 'entra-app-secret: the application (client) id')
    .option('--credential-id <id>', 'the provider id of the credential the secret holds now')
    .option('--validity-days <n>', 'lifetime of a new credential')
    .option('--window-days <n>', 'rotate this many days before expiry')
    .option('--grace-hours <n>', 'keep the previous credential this long')
    .option('--notify <list>', 'extra recipients: emails or channel names')
    .option('--dry-run', 'check and show, write nothing')
    .action(
      action(async (t, p, ref: string, o: OnboardOptions) =>
        (await import('./onboard')).onboard(t, ref, o, p),
      ),
    );

  command('doctor')
    .description('checks the setup from the operator’s seat; each line is ok or a problem with its fix')
    .action(action(async (t, p) => (await import('./doctor')).doctor(t, p)));

  const federation = program
    .command('federation')
    .description('workload identity federation for Databricks')
    .exitOverride();
  command('check', federation)
    .description(
      'why a workload token does (not) exchange for a Databricks token, and the SDK configuration when it does',
    )
    .requiredOption('--host <workspace>', 'the workspace host')
    .requiredOption('--client-id <appId>', 'the service principal’s application id')
    .option('--token-file <file>', 'the workload token file (e.g. the projected service-account token)')
    .option('--token-env <name>', 'an environment variable holding the workload token')
    .option('--account-id <id>', 'the Databricks account (default: the accounts the service knows)')
    .action(
      action(async (t, p, o: FederationCheckOptions) =>
        (await import('./federation')).federationCheck(t, o, p),
      ),
    );

  return {
    program,
    run: async (argv) => {
      exitCode = 0;
      try {
        await program.parseAsync(argv, { from: 'user' });
        return exitCode;
      } catch (e) {
        if (e instanceof CommanderError) {
          // --help is an exit too (code 0); everything else commander raises is a usage error.
          return e.exitCode === 0 ? 0 : 2;
        }
        if (e instanceof UsageError) {
          io.err(`error: ${e.message}\n(add --help for usage)\n`);
          return 2;
        }
        if (e instanceof ConfigError) {
          io.err(`${e.message}\n`);
          return 1;
        }
        io.err(`✗ ${redactError(e)}\n`);
        return 1;
      }
    },
  };
}

if (require.main === module) {
  void buildProgram()
    .run(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    });
}
