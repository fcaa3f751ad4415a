import { MARKER_PREFIX, TAGS } from '../shared/constants';
import { readPolicy } from '../shared/policy';
import { redactError } from '../shared/redact';
import { ROTATORS } from '../shared/rotators';
import type { Finding } from '../shared/rotators/types';
import { UsageError, type CommandResult, type Progress } from './output';
import { graphGet } from './clients';
import { parseSecretRef } from './rotate';
import type { Target } from './target';

export interface OnboardOptions {
  kind: string;
  databricksHost?: string;
  patOwner?: string;
  accountId?: string;
  spId?: string;
  appId?: string;
  credentialId?: string;
  validityDays?: string;
  windowDays?: string;
  graceHours?: string;
  notify?: string;
  dryRun?: boolean;
}

/** Option → tag; only the options given become tags (the rest keep the app-setting defaults). */
const OPTION_TAGS: [keyof OnboardOptions, string][] = [
  ['kind', TAGS.kind],
  ['databricksHost', TAGS.databricksHost],
  ['patOwner', TAGS.databricksPatOwner],
  ['accountId', TAGS.databricksAccountId],
  ['spId', TAGS.databricksSpId],
  ['appId', TAGS.entraAppId],
  ['credentialId', TAGS.credentialId],
  ['validityDays', TAGS.validityDays],
  ['windowDays', TAGS.windowDays],
  ['graceHours', TAGS.graceHours],
  ['notify', TAGS.notify],
];

/** The CLI option that sets a tag, so a finding names what the operator typed. */
const optionOf = (tag: string) => {
  const entry = OPTION_TAGS.find(([, t]) => t === tag);
  return entry ? `--${entry[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : `tag ${tag}`;
};

/**
 * Opts a secret in: the tags are checked with the service's own policy code (anything that would be a
 * finding is refused and nothing is written), then written on the current version; then it says what
 * the target's admin must add so the service may rotate it (design section 4).
 */
export async function onboard(
  target: Target,
  ref: string,
  o: OnboardOptions,
  progress: Progress,
): Promise<CommandResult> {
  if (!ROTATORS.has(o.kind))
    throw new UsageError(`--kind must be one of ${[...ROTATORS.keys()].join(', ')}, not ${o.kind}`);
  const { vault, secret } = parseSecretRef(target, ref);
  const client = target.services.vaults.get(vault).client;
  progress.step(`reading ${vault}/${secret}`);
  let current;
  for await (const p of client.listPropertiesOfSecretVersions(secret)) {
    if (!current || (p.createdOn?.getTime() ?? 0) >= (current.createdOn?.getTime() ?? 0)) current = p;
  }
  if (!current?.version)
    return {
      exitCode: 1,
      data: { status: 'refused', vault, secret, reason: 'no such secret' },
      text: [`✗ ${vault}/${secret} does not exist: store the current credential first, then onboard it`],
    };

  const given = Object.fromEntries(
    OPTION_TAGS.filter(([option]) => typeof o[option] === 'string').map(([option, tag]) => [
      tag,
      String(o[option]).trim(),
    ]),
  );
  const tags = { ...(current.tags ?? {}), ...given };
  const result = readPolicy(tags, target.settings, ROTATORS);
  const findings: Finding[] = result.status === 'invalid' ? result.findings : [];
  if (result.status !== 'ok' || !current.enabled) {
    if (current.enabled === false)
      findings.push({ tag: '(version)', reason: 'the current version is disabled; enable it first' });
    return {
      exitCode: 1,
      data: { status: 'refused', vault, secret, findings },
      text: [
        `✗ ${vault}/${secret} was not changed: the service would report these as findings`,
        ...findings.map((f) => `  ${optionOf(f.tag)}: ${f.reason}`),
      ],
    };
  }
  const policy = result.policy;
  const text: string[] = [];
  const warnings: string[] = [];
  if (!tags[TAGS.credentialId])
    warnings.push(
      `no ${TAGS.credentialId}: the first rotation cannot revoke the credential it replaces; pass --credential-id (its id is in \`kv-rotator inventory\`)`,
    );

  if (o.dryRun) text.push(`· dry run: ${vault}/${secret} was not changed; these tags would be written:`);
  else {
    progress.step(`writing the tags of ${vault}/${secret}`);
    await client.updateSecretProperties(secret, current.version, { tags });
    text.push(`✓ ${vault}/${secret} (version ${current.version}) is opted in as ${policy.kind}:`);
  }
  for (const [k, v] of Object.entries(given)) text.push(`  ${k}=${v}`);
  text.push(
    `  validity ${policy.validityDays} d, rotated ${policy.windowDays} d before expiry, previous credential kept ${policy.graceHours} h`,
  );

  // What the target's admin must add (the service refuses unbound targets: no confused deputy).
  const key = policy.rotator.bindingKey(policy.target);
  const admin: string[] = [];
  if (key !== undefined) {
    const entry = `${vault}/${secret}=${key}`;
    const bound = target.settings.ROTATION_BINDINGS.some(
      (b) =>
        b.vault.toLowerCase() === vault.toLowerCase() &&
        (b.secret === '*' || b.secret === secret) &&
        b.target === key,
    );
    let tagged = false;
    if (!bound && policy.rotator.hasTargetBinding) {
      tagged = await policy.rotator
        .hasTargetBinding(
          policy.target,
          { vaultName: vault, secretName: secret, currentValue: '' },
          target.services.deps,
        )
        .catch((e: unknown) => {
          warnings.push(`could not read the target's own binding: ${redactError(e)}`);
          return false;
        });
    }
    if (bound || tagged)
      text.push(`✓ ${policy.rotator.describe(policy.target)} is already bound to ${vault}/${secret}`);
    else {
      admin.push(`add to the function app's ROTATION_BINDINGS (comma-separated): ${entry}`);
      if (policy.rotator.hasTargetBinding)
        admin.push(
          `or tag the application itself (only its owners can): ${MARKER_PREFIX}:${vault}/${secret}`,
        );
    }
  }
  if (policy.kind === 'entra-app-secret') {
    const appId = tags[TAGS.entraAppId]?.toLowerCase();
    const owned = await graphGet<{ value: { appId: string }[] }>(
      target,
      `/servicePrincipals(appId='${target.settings.AZURE_CLIENT_ID}')/ownedObjects`,
    ).then(
      (r) => r.value.some((a) => a.appId.toLowerCase() === appId),
      () => false,
    );
    if (owned) text.push(`✓ the service's identity owns the application`);
    else
      admin.push(
        `make the service's identity (${target.settings.AZURE_CLIENT_ID ?? 'its managed identity'}) an owner of the app (Application.ReadWrite.OwnedBy only reaches owned apps)`,
      );
  }
  if (policy.kind === 'databricks-sp-secret')
    admin.push(
      `the service's identity must be an admin of Databricks account ${tags[TAGS.databricksAccountId]}`,
    );
  if (admin.length)
    text.push(
      '',
      `What the target's admin must do before the first rotation:`,
      ...admin.map((a) => `  • ${a}`),
    );
  if (warnings.length) text.push('', ...warnings.map((w) => `! ${w}`));
  return {
    exitCode: 0,
    data: {
      status: o.dryRun ? 'planned' : 'onboarded',
      vault,
      secret,
      version: current.version,
      tags: given,
      admin,
      warnings,
    },
    text,
  };
}
