import { ROTATORS } from '../shared/rotators';
import { day, parseDuration, relative, table, type CommandResult, type Progress, UsageError } from './output';
import { readProviders, type ProviderCredential } from './providers';
import type { Target } from './target';
import { listVaults, type SecretRow } from './vaults';

export interface InventoryOptions {
  vault?: string;
  kind?: string;
  expiringWithin?: string;
}

/** Provider credential kinds by the secret kind that holds them (for `--kind`). */
const PROVIDER_OF_KIND: Record<string, ProviderCredential['provider']> = {
  'databricks-pat': 'databricks-pat',
  'databricks-sp-secret': 'databricks-sp',
  'entra-app-secret': 'entra',
};

export async function inventory(
  target: Target,
  options: InventoryOptions,
  progress: Progress,
  now = new Date(),
): Promise<CommandResult> {
  if (options.kind && !ROTATORS.has(options.kind))
    throw new UsageError(`--kind must be one of ${[...ROTATORS.keys()].join(', ')}, not ${options.kind}`);
  if (options.vault && !target.services.vaults.has(options.vault))
    throw new UsageError(
      `--vault ${options.vault} is not configured (KEY_VAULT_URIS has ${target.services.vaults.names().join(', ')})`,
    );
  const within = options.expiringWithin === undefined ? undefined : parseDuration(options.expiringWithin);
  if (options.expiringWithin !== undefined && within === undefined)
    throw new UsageError(
      `--expiring-within takes a duration such as 30d or 12h, not ${options.expiringWithin}`,
    );
  const expiring = (iso: string | undefined) =>
    within === undefined || (iso !== undefined && new Date(iso).getTime() - now.getTime() <= within);

  progress.step('listing the vaults');
  const listings = await listVaults(target, now);
  const all = listings.flatMap((l) => l.secrets);
  const providers = await readProviders(target, all, (s) => progress.step(s));

  const secrets = all.filter(
    (s) =>
      (!options.vault || s.vault.toLowerCase() === options.vault.toLowerCase()) &&
      (!options.kind || s.kind === options.kind) &&
      expiring(s.expiresOn),
  );
  const provider = options.kind ? PROVIDER_OF_KIND[options.kind] : undefined;
  const credentials = providers.credentials.filter(
    (c) =>
      (!provider || c.provider === provider) &&
      (!options.vault || c.heldBy?.toLowerCase().startsWith(`${options.vault.toLowerCase()}/`)) &&
      expiring(c.expiresOn),
  );
  const problems = [
    ...listings.filter((l) => l.error).map((l) => `vault ${l.vault}: ${l.error}`),
    ...providers.problems,
  ];
  const flagged = credentials.filter((c) => c.flags.length);
  const findings = secrets.filter((s) => s.findings || s.lastFailure || s.state === 'expired');

  const text = [`Inventory of ${target.description}, ${now.toISOString()}`, '', 'Vault secrets'];
  text.push(
    ...(table(
      ['VAULT', 'SECRET', 'KIND', 'EXPIRES', 'LEFT', 'STATE'],
      secrets.map((s) => [
        s.vault,
        s.secret,
        s.kind ?? '-',
        day(s.expiresOn),
        relative(s.expiresOn, now),
        describeState(s),
      ]),
    ) || []),
  );
  if (secrets.length === 0) text.push('  none match');
  text.push('', 'Provider credentials');
  const rows = credentials.map((c) => [
    c.provider,
    c.where,
    c.id.length > 12 ? `${c.id.slice(0, 12)}…` : c.id,
    c.owner ?? '-',
    day(c.expiresOn),
    c.lastUsed ?? '-',
    c.heldBy ?? '-',
    c.flags.join('; ') || 'ok',
  ]);
  text.push(...table(['PROVIDER', 'WHERE', 'ID', 'OWNER', 'EXPIRES', 'LAST USED', 'HELD BY', 'FLAGS'], rows));
  if (credentials.length === 0) text.push('  none match');
  // One line per secret (or provider place) and advice: a current and a previous credential share it.
  const advice = [
    ...new Set(
      credentials.flatMap((c) =>
        c.advice.map((a) => `${c.heldBy?.replace(' (previous)', '') ?? `${c.provider} ${c.where}`}: ${a}`),
      ),
    ),
  ];
  if (advice.length) text.push('', 'Advice', ...advice.map((a) => `  • ${a}`));
  if (problems.length) text.push('', 'Could not read', ...problems.map((p) => `  ✗ ${p}`));
  text.push(
    '',
    `${secrets.length} secrets (${secrets.filter((s) => s.optedIn).length} opted in), ${credentials.length} provider credentials, ${flagged.length} flagged, ${findings.length} secret findings`,
  );
  return {
    exitCode: flagged.length || findings.length || problems.length ? 1 : 0,
    data: {
      at: now.toISOString(),
      target: target.mode,
      secrets: secrets.map(({ tags: _tags, ...s }) => s),
      credentials,
      problems,
    },
    text,
  };
}

function describeState(s: SecretRow): string {
  const parts: string[] = [s.state];
  if (s.findings) parts.push(s.findings.map((f) => `${f.tag}: ${f.reason}`).join('; '));
  if (s.lastFailure) parts.push(`last failure: ${s.lastFailure}`);
  return parts.join(' — ');
}
