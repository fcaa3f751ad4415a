/**
 * After the storm: what every opted-in secret holds, checked at its provider with the service's own
 * clients (Key Vault SDK to read, the rotator's `verify` to authenticate: Databricks SCIM Me, the
 * account OIDC token endpoint, Entra's token endpoint), and what the providers hold that no secret
 * references. Counts come from the emulator's state (credentials) and the webhook sink (notices).
 */
import { TAGS } from '../../shared/constants';
import { parseSettings } from '../../shared/config';
import { ROTATORS } from '../../shared/rotators';
import type { Services } from '../../shared/services';
import type { LocalAzure } from '../azure';
import type { ChaosSecret } from './tenant';

export interface Verdict {
  checked: number;
  working: number;
  lost: string[];
  /** Previous credentials in their grace period that no longer work. */
  graceBroken: string[];
  /** Credentials this service created that no secret references. */
  orphans: string[];
  /** Seeded credentials no secret references any more that the engine could not prove (owners were told). */
  leftToOwners: number;
  /** Secrets with more than one rotation stored in the run. */
  duplicates: string[];
  rotations: number;
  /** Stored rotations never announced / announced by more than one notice. */
  missedAnnouncements: string[];
  doubleAnnouncements: string[];
  noticesByKind: Record<string, number>;
  /** Credentials at the providers now (ours). */
  credentialsNow: number;
}

/** Every credential id at the targets the secrets use, by target. */
export function providerCredentials(
  azure: LocalAzure,
  secrets: readonly ChaosSecret[],
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (target: string, id: string) => {
    const set = out.get(target) ?? new Set<string>();
    set.add(id);
    out.set(target, set);
  };
  const targets = new Set(secrets.map((s) => s.target));
  for (const ws of azure.state.workspaces.values())
    for (const t of ws.tokens) add(`ws:${ws.name}`, t.tokenId);
  for (const account of azure.state.accounts.values())
    for (const sp of account.servicePrincipals)
      if (targets.has(`sp:${sp.id}`)) for (const s of sp.secrets) add(`sp:${sp.id}`, s.id);
  for (const app of azure.state.apps)
    if (targets.has(`app:${app.appId}`))
      for (const c of app.passwordCredentials) add(`app:${app.appId}`, c.keyId);
  return out;
}

/** PAT targets are per secret; their credentials live in the vault's workspace. */
const holder = (s: ChaosSecret) => (s.kind === 'databricks-pat' ? `ws:ws-${s.vault}` : s.target);

export async function verify(
  azure: LocalAzure,
  services: Services,
  env: Record<string, string>,
  secrets: readonly ChaosSecret[],
  since: number,
  /** `{target}#{id}` of every credential there was before the run. */
  seeded: ReadonlySet<string>,
): Promise<Verdict> {
  const settings = parseSettings(env);
  const v: Verdict = {
    checked: 0,
    working: 0,
    lost: [],
    graceBroken: [],
    orphans: [],
    leftToOwners: 0,
    duplicates: [],
    rotations: 0,
    missedAnnouncements: [],
    doubleAnnouncements: [],
    noticesByKind: {},
    credentialsNow: 0,
  };
  // Notices: distinct notification ids (a queue redelivery of the same notice is not a second one).
  const seen = new Set<string>();
  const rotatedBy = new Map<string, Set<string>>();
  for (const d of azure.sink.forChannel('webhook')) {
    const n = (d.body as { notification?: { id: string; kind: string; details?: { rotationId?: unknown } } })
      .notification;
    if (!n || seen.has(n.id)) continue;
    seen.add(n.id);
    v.noticesByKind[n.kind] = (v.noticesByKind[n.kind] ?? 0) + 1;
    if (n.kind === 'rotated' && typeof n.details?.rotationId === 'string') {
      const ids = rotatedBy.get(n.details.rotationId) ?? new Set<string>();
      ids.add(n.id);
      rotatedBy.set(n.details.rotationId, ids);
    }
  }

  const referenced = new Map<string, Set<string>>();
  const refer = (target: string, id: string | undefined) => {
    if (!id) return;
    const set = referenced.get(target) ?? new Set<string>();
    set.add(id);
    referenced.set(target, set);
  };
  const check = async (s: ChaosSecret) => {
    const where = `${s.vault}/${s.name}`;
    v.checked++;
    const latest = await services.vaults.get(s.vault).client.getSecret(s.name);
    const tags = latest.properties.tags ?? {};
    const rotator = ROTATORS.get(s.kind)!;
    const parsed = rotator.parseTarget(tags, settings);
    if (!('target' in parsed)) {
      v.lost.push(`${where} (tags no longer parse)`);
      return;
    }
    try {
      await rotator.verify(parsed.target, latest.value ?? '', services.deps);
      v.working++;
    } catch {
      v.lost.push(where);
    }
    refer(holder(s), tags[TAGS.credentialId]);
    refer(holder(s), tags[TAGS.previousCredentialId]);
    // History, from the emulator (the SDK would list versions one by one): rotations in this run.
    const versions = azure.state.vaults.get(s.vault)!.secrets.get(s.name)!;
    // A store retried after a lost answer writes the same rotation twice: rotations are rotation ids.
    const rotated = new Set(
      versions
        .filter((x) => x.tags[TAGS.rotationId] && x.created * 1000 >= since - 1000)
        .map((x) => x.tags[TAGS.rotationId]!),
    );
    v.rotations += rotated.size;
    if (rotated.size > 1) v.duplicates.push(`${where} (${rotated.size} rotations)`);
    for (const r of rotated) {
      const notices = rotatedBy.get(r)?.size ?? 0;
      if (notices === 0) v.missedAnnouncements.push(where);
      if (notices > 1) v.doubleAnnouncements.push(`${where} (${notices})`);
    }
    // Grace: the previous credential (the version before the latest) still authenticates.
    const previous = versions.at(-2);
    const until = tags[TAGS.revokePreviousAfter];
    if (previous && tags[TAGS.previousCredentialId] && until && Date.parse(until) > azure.clock.now()) {
      try {
        await rotator.verify(parsed.target, previous.value, services.deps);
      } catch {
        v.graceBroken.push(where);
      }
    }
  };
  for (let i = 0; i < secrets.length; i += 16) await Promise.all(secrets.slice(i, i + 16).map(check));

  for (const [target, ids] of providerCredentials(azure, secrets)) {
    v.credentialsNow += ids.size;
    for (const id of ids) {
      if (referenced.get(target)?.has(id)) continue;
      if (seeded.has(`${target}#${id}`)) v.leftToOwners++;
      else v.orphans.push(`${target} ${id}`);
    }
  }
  return v;
}
