import { existsSync, readFileSync } from 'node:fs';
import { RESOURCE_SCOPES, STORAGE, TAGS } from '../shared/constants';
import type { ConfigError } from '../shared/errors';
import { redactError } from '../shared/redact';
import { parseTelemetryLine } from '../local/host/telemetry';
import type { CommandResult, Progress } from './output';
import { databricksGet, graphGet, workspaceHosts } from './clients';
import { vaultSetup } from './doctor-vaults';
import type { Target } from './target';
import { listVaults, type SecretRow } from './vaults';

export interface Check {
  area: string;
  subject: string;
  ok: boolean;
  detail: string;
  /** How to fix it, for a problem. */
  fix?: string;
}

/** The Graph application permissions the service's identity holds (its own token, when the CLI runs as it). */
async function graphRoles(target: Target): Promise<string[] | undefined> {
  const token = (await target.services.credential.getToken(RESOURCE_SCOPES.graph))?.token;
  const claims = JSON.parse(
    Buffer.from(token?.split('.')[1] ?? '', 'base64url').toString('utf8') || '{}',
  ) as { appid?: string; roles?: string[] };
  if (claims.appid?.toLowerCase() !== target.settings.AZURE_CLIENT_ID?.toLowerCase()) return undefined;
  return claims.roles ?? [];
}

async function entraChecks(target: Target, secrets: SecretRow[], checks: Check[]): Promise<void> {
  const apps = [
    ...new Set(
      secrets
        .filter((s) => s.kind === 'entra-app-secret' && s.tags[TAGS.entraAppId])
        .map((s) => s.tags[TAGS.entraAppId] as string),
    ),
  ];
  if (apps.length === 0) return;
  const roles = await graphRoles(target).catch(() => undefined);
  if (roles === undefined)
    checks.push({
      area: 'graph',
      subject: 'permissions',
      ok: true,
      detail:
        'not checked: this CLI runs as another identity than the service (check the app role assignments of the managed identity)',
    });
  else {
    const ok = roles.includes('Application.ReadWrite.OwnedBy') || roles.includes('Application.ReadWrite.All');
    checks.push({
      area: 'graph',
      subject: 'permissions',
      ok,
      detail: `the service's Graph token carries ${roles.join(', ') || 'no application permissions'}`,
      fix: ok ? undefined : 'grant Application.ReadWrite.OwnedBy: infra/scripts/grant-graph-permissions.sh',
    });
  }
  const owned = await graphGet<{ value: { appId: string }[] }>(
    target,
    `/servicePrincipals(appId='${target.settings.AZURE_CLIENT_ID}')/ownedObjects`,
  );
  for (const appId of apps) {
    const ok = owned.value.some((a) => a.appId.toLowerCase() === appId.toLowerCase());
    checks.push({
      area: 'graph',
      subject: `app ${appId}`,
      ok,
      detail: ok
        ? 'the service owns it'
        : 'the service is not an owner, so Application.ReadWrite.OwnedBy cannot add its secrets',
      fix: ok
        ? undefined
        : `az ad app owner add --id ${appId} --owner-object-id {the managed identity's principal id}`,
    });
  }
}

async function databricksChecks(target: Target, secrets: SecretRow[], checks: Check[]): Promise<void> {
  const sps = new Map<string, { accountId: string; spId: string }>();
  for (const s of secrets)
    if (s.kind === 'databricks-sp-secret' && s.tags[TAGS.databricksAccountId] && s.tags[TAGS.databricksSpId])
      sps.set(`${s.tags[TAGS.databricksAccountId]}/${s.tags[TAGS.databricksSpId]}`, {
        accountId: s.tags[TAGS.databricksAccountId] as string,
        spId: s.tags[TAGS.databricksSpId] as string,
      });
  for (const [key, { accountId, spId }] of sps) {
    try {
      await databricksGet(
        target,
        target.settings.DATABRICKS_ACCOUNTS_HOST,
        `/api/2.0/accounts/${accountId}/servicePrincipals/${spId}/credentials/secrets`,
      );
      checks.push({
        area: 'databricks',
        subject: `sp ${key}`,
        ok: true,
        detail: "the service's identity may manage its OAuth secrets (account admin)",
      });
    } catch (e) {
      checks.push({
        area: 'databricks',
        subject: `sp ${key}`,
        ok: false,
        detail: redactError(e),
        fix: `make the service's identity an account admin of ${accountId} (account console → User management)`,
      });
    }
  }
  const patSecrets = secrets.filter((s) => s.kind === 'databricks-pat');
  for (const host of workspaceHosts(target, patSecrets)) {
    const held = patSecrets.filter((s) => s.tags[TAGS.databricksHost]?.toLowerCase().includes(host));
    const owners = held.filter((s) => s.tags[TAGS.databricksPatOwner]).length;
    let detail = `${held.length} PAT secret(s): ${held.length - owners} rotate with their own token, ${owners} as their owning service principal`;
    try {
      const tokens =
        (
          await databricksGet<{ token_infos?: { token_id: string }[] }>(
            target,
            `https://${host}`,
            '/api/2.0/token-management/tokens',
          )
        ).token_infos ?? [];
      const missing = held.filter(
        (s) => s.tags[TAGS.credentialId] && !tokens.some((t) => t.token_id === s.tags[TAGS.credentialId]),
      );
      if (missing.length) {
        checks.push({
          area: 'databricks',
          subject: host,
          ok: false,
          detail: `${missing.map((s) => `${s.vault}/${s.secret}`).join(', ')}: the PAT it holds no longer exists (revoked or expired)`,
          fix: 'create a new PAT, store it, and onboard it again with --credential-id',
        });
        continue;
      }
      detail += '; every PAT a vault holds exists';
    } catch {
      detail += '; token management is not readable by this identity (PATs not cross-checked)';
    }
    checks.push({ area: 'databricks', subject: host, ok: true, detail });
  }
}

/** The last ScanCompleted per vault: the attached function log locally; App Insights is the real record. */
function lastScans(target: Target, vaults: string[], checks: Check[]): void {
  if (!target.logFile || !existsSync(target.logFile)) {
    for (const v of vaults)
      checks.push({
        area: 'scan',
        subject: v,
        ok: target.mode === 'embedded',
        detail:
          target.mode === 'embedded'
            ? 'no function app runs against this embedded local Azure (run `npm start` for one)'
            : 'the last ScanCompleted is in Application Insights, not readable from here',
        fix:
          target.mode === 'embedded'
            ? undefined
            : "customEvents | where name == 'ScanCompleted' | summarize arg_max(timestamp, *) by tostring(customDimensions.vault)",
      });
    return;
  }
  const last = new Map<string, { at: string; outcome: string; scanned: string }>();
  for (const line of readFileSync(target.logFile, 'utf8').split('\n')) {
    const at = line.slice(0, 24);
    const event = parseTelemetryLine(line.replace(/^\S+\s+\S+\s+\S+\s/, ''));
    if (event?.name === 'ScanCompleted' && event.dimensions.vault)
      last.set(event.dimensions.vault, {
        at,
        outcome: event.dimensions.outcome ?? '?',
        scanned: event.dimensions.scanned ?? '?',
      });
  }
  for (const v of vaults) {
    const scan = last.get(v);
    checks.push(
      scan && scan.outcome === 'completed'
        ? {
            area: 'scan',
            subject: v,
            ok: true,
            detail: `last scan completed ${scan.at} (${scan.scanned} secrets)`,
          }
        : {
            area: 'scan',
            subject: v,
            ok: false,
            detail: scan ? `last scan ${scan.outcome} at ${scan.at}` : 'no completed scan yet',
            fix: `see ${target.logFile}`,
          },
    );
  }
}

async function poisonDepths(target: Target, checks: Check[]): Promise<void> {
  for (const name of [`${STORAGE.rotationQueue}-poison`, `${STORAGE.notificationQueue}-poison`]) {
    const queue = target.queues.getQueueClient(name);
    const depth = (await queue.exists()) ? ((await queue.getProperties()).approximateMessagesCount ?? 0) : 0;
    checks.push({
      area: 'queues',
      subject: name,
      ok: depth === 0,
      detail: `${depth} message(s)`,
      fix: depth
        ? `each is work the service gave up on; \`kv-rotator inventory\` shows which secret, fix the cause and \`kv-rotator rotate\` it`
        : undefined,
    });
  }
}

/** Doctor's answer when the settings do not parse: one problem per setting, nothing else can be checked. */
export function settingsChecks(e: ConfigError): CommandResult {
  const checks: Check[] = e.issues.map((i) => ({
    area: 'settings',
    subject: i.setting,
    ok: false,
    detail: i.problem,
    fix: `set ${i.setting} in the app settings (local.settings.json Values; in Azure, infra/app/api.bicep)`,
  }));
  return render(checks, 'the app settings (nothing else can be checked until they are valid)');
}

function render(checks: Check[], description: string): CommandResult {
  const problems = checks.filter((c) => !c.ok);
  const width = Math.max(...checks.map((c) => `${c.area} ${c.subject}`.length));
  const text = [`Doctor: ${description}`, ''];
  for (const c of checks) {
    text.push(`${c.ok ? '✓' : '✗'} ${`${c.area} ${c.subject}`.padEnd(width)}  ${c.detail}`);
    if (c.fix) text.push(`  ${' '.repeat(width)}  fix: ${c.fix}`);
  }
  text.push('', problems.length ? `${problems.length} problem(s)` : 'No problems found.');
  return { exitCode: problems.length ? 1 : 0, data: { checks }, text };
}

export async function doctor(target: Target, progress: Progress): Promise<CommandResult> {
  const checks: Check[] = [];
  const s = target.settings;
  checks.push({
    area: 'settings',
    subject: 'app settings',
    ok: true,
    detail: `valid: ${s.KEY_VAULT_URIS.length} vault(s), ${s.ROTATION_BINDINGS.length} binding(s), channels ${s.NOTIFY_DEFAULT_CHANNELS.join(', ') || 'none'}${s.ROTATION_DRY_RUN ? ', DRY RUN' : ''}`,
  });
  progress.step('listing the vaults');
  const listings = await listVaults(target, new Date());
  for (const l of listings)
    checks.push(
      l.error
        ? {
            area: 'vault',
            subject: l.vault,
            ok: false,
            detail: `cannot list secrets: ${l.error}`,
            fix: `grant the function app's identity Key Vault Secrets Officer on ${l.vault}`,
          }
        : {
            area: 'vault',
            subject: l.vault,
            ok: true,
            detail: `the identity can list it (${l.secrets.length} secrets, ${l.secrets.filter((x) => x.optedIn).length} opted in)`,
          },
    );
  const vaults = listings.map((l) => l.vault);
  const secrets = listings.flatMap((l) => l.secrets);
  const guard = async (area: string, what: string, fn: () => Promise<void>) => {
    progress.step(what);
    try {
      await fn();
    } catch (e) {
      checks.push({ area, subject: what, ok: false, detail: redactError(e) });
    }
  };
  await guard('vault', 'vault setup', () => vaultSetup(target, vaults, checks));
  await guard('graph', 'Graph', () => entraChecks(target, secrets, checks));
  await guard('databricks', 'Databricks', () => databricksChecks(target, secrets, checks));
  lastScans(target, vaults, checks);
  await guard('queues', 'poison queues', () => poisonDepths(target, checks));
  return render(checks, target.description);
}
