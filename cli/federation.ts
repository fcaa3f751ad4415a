import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { parseDatabricksHost } from '../shared/hosts';
import { redactError, registerSecret } from '../shared/redact';
import { table, type CommandResult, type Progress, UsageError } from './output';
import {
  accountIds,
  accountServicePrincipals,
  isGuid,
  spFederationPolicies,
  type FederationPolicyView,
} from './clients';
import type { Target } from './target';
import { listVaults } from './vaults';

export interface FederationCheckOptions {
  host: string;
  clientId: string;
  tokenFile?: string;
  tokenEnv?: string;
  accountId?: string;
}

export interface Mismatch {
  policy: string;
  claim: string;
  field: string;
  expected: string;
  actual: string;
}

interface Claims {
  iss?: unknown;
  aud?: unknown;
  sub?: unknown;
  exp?: unknown;
  [claim: string]: unknown;
}

const show = (v: unknown) => (v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v));

/** The workload's JWT, from a file (the projected volume) or an environment variable. Never printed. */
function readToken(o: FederationCheckOptions): string {
  if (!o.tokenFile === !o.tokenEnv)
    throw new UsageError('give exactly one of --token-file FILE or --token-env NAME');
  let raw: string | undefined;
  if (o.tokenFile) {
    if (!existsSync(o.tokenFile)) throw new UsageError(`--token-file ${o.tokenFile} does not exist`);
    raw = readFileSync(o.tokenFile, 'utf8');
  } else raw = process.env[o.tokenEnv as string];
  if (!raw?.trim())
    throw new UsageError(
      o.tokenFile ? `${o.tokenFile} is empty` : `environment variable ${o.tokenEnv} is not set`,
    );
  const token = raw.trim();
  registerSecret(token);
  return token;
}

function decode(token: string): { alg?: string; claims: Claims } {
  const [h, p] = token.split('.');
  try {
    const header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')) as { alg?: string };
    const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString('utf8')) as Claims;
    return { alg: header.alg, claims };
  } catch {
    throw new UsageError('the workload token is not a JWT (expected header.payload.signature)');
  }
}

/** Field-by-field comparison of the token with one policy (the signature is the exchange's to judge). */
export function compare(
  claims: Claims,
  alg: string | undefined,
  policy: FederationPolicyView,
  accountId: string,
  nowSeconds: number,
): Mismatch[] {
  const p = policy.oidc_policy;
  const out: Mismatch[] = [];
  const add = (claim: string, field: string, expected: string, actual: unknown) =>
    out.push({ policy: policy.policy_id, claim, field, expected, actual: show(actual) });
  if (claims.iss !== p.issuer) add('iss', 'oidc_policy.issuer', p.issuer, claims.iss);
  const audiences = p.audiences?.length ? p.audiences : [accountId];
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.some((a) => typeof a === 'string' && audiences.includes(a)))
    add(
      'aud',
      p.audiences?.length ? 'oidc_policy.audiences' : 'oidc_policy.audiences (default: the account id)',
      audiences.join(' or '),
      claims.aud,
    );
  const subjectClaim = p.subject_claim || 'sub';
  if (claims[subjectClaim] !== p.subject)
    add(
      subjectClaim,
      `oidc_policy.subject (subject_claim ${subjectClaim})`,
      p.subject ?? '',
      claims[subjectClaim],
    );
  if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds)
    add(
      'exp',
      '(token lifetime)',
      `after ${new Date(nowSeconds * 1000).toISOString()}`,
      typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : claims.exp,
    );
  if (alg !== 'RS256' && alg !== 'ES256')
    add('alg (header)', '(supported algorithms)', 'RS256 or ES256', alg);
  return out;
}

/** The account and SP id of an application id: `--account-id`, or the accounts the service knows. */
async function findSp(
  target: Target,
  o: FederationCheckOptions,
): Promise<{ accountId: string; spId: string; displayName?: string }> {
  const candidates = new Set<string>(
    o.accountId
      ? [o.accountId]
      : accountIds(
          target,
          (await listVaults(target, new Date())).flatMap((l) => l.secrets),
        ),
  );
  for (const accountId of candidates) {
    if (!isGuid(accountId)) continue;
    const [sp] = await accountServicePrincipals(target, accountId, `applicationId eq "${o.clientId}"`).catch(
      () => [],
    );
    if (sp) return { accountId, spId: sp.id, displayName: sp.displayName };
  }
  throw new UsageError(
    `no service principal with application id ${o.clientId} in ${candidates.size ? `account(s) ${[...candidates].join(', ')}` : 'any account the service knows'}; pass --account-id`,
  );
}

/** The RFC 8693 exchange at the workspace, as the Databricks SDKs make it. The access token is dropped. */
async function exchange(
  origin: string,
  token: string,
  clientId: string,
): Promise<{ ok: true; expiresIn?: number } | { ok: false; error: string }> {
  const res = await request(`${origin}/oidc/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      client_id: clientId,
      scope: 'all-apis',
    }).toString(),
  });
  const body = (await res.body.json().catch(() => ({}))) as {
    access_token?: string;
    expires_in?: number;
    error?: string;
    error_description?: string;
  };
  if (res.statusCode === 200 && body.access_token) {
    registerSecret(body.access_token);
    return { ok: true, expiresIn: body.expires_in };
  }
  return {
    ok: false,
    error: `${res.statusCode} ${body.error ?? ''}: ${body.error_description ?? ''}`.trim(),
  };
}

/** `system:serviceaccount:{namespace}:{name}` → its parts. */
const serviceAccount = (subject: string | undefined) => {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(subject ?? '');
  return m ? { namespace: m[1] as string, name: m[2] as string } : undefined;
};

function sdkConfig(
  origin: string,
  clientId: string,
  tokenPath: string,
  policy: FederationPolicyView,
  aud: string,
): string[] {
  const sa = serviceAccount(policy.oidc_policy.subject);
  const mount = path.posix.dirname(tokenPath);
  const file = path.posix.basename(tokenPath);
  return [
    'Databricks SDK configuration for the workload (environment):',
    `  DATABRICKS_HOST=${origin}`,
    '  DATABRICKS_AUTH_TYPE=file-oidc',
    `  DATABRICKS_OIDC_TOKEN_FILEPATH=${tokenPath}`,
    `  DATABRICKS_CLIENT_ID=${clientId}`,
    '',
    'AKS: the pod runs as the service account the policy names, with the token projected for the policy’s audience:',
    '  apiVersion: v1',
    '  kind: ServiceAccount',
    `  metadata: { name: ${sa?.name ?? '{service account}'}, namespace: ${sa?.namespace ?? '{namespace}'} }`,
    '  ---',
    '  # in the pod spec',
    `  serviceAccountName: ${sa?.name ?? '{service account}'}`,
    '  volumes:',
    '    - name: databricks-token',
    '      projected:',
    '        sources:',
    '          - serviceAccountToken:',
    `              path: ${file}`,
    `              audience: ${aud}`,
    '              expirationSeconds: 3600',
    '  containers:',
    '    - volumeMounts:',
    `        - { name: databricks-token, mountPath: ${mount}, readOnly: true }`,
    '',
    'Why it keeps working: the kubelet rewrites the projected token before it expires (at 80% of its',
    'lifetime), and file-oidc reads the file again each time the SDK needs a new Databricks token (they',
    'last an hour), so nothing has to restart. env-oidc reads an environment variable that never changes,',
    'and a one-off Entra token passed to the SDK stops working after its hour; neither refreshes.',
  ];
}

export async function federationCheck(
  target: Target,
  o: FederationCheckOptions,
  progress: Progress,
  now = new Date(),
): Promise<CommandResult> {
  const host = parseDatabricksHost(o.host, target.settings.DATABRICKS_ALLOWED_HOSTS);
  if ('error' in host) throw new UsageError(`--host: ${host.error}`);
  if (!isGuid(o.clientId))
    throw new UsageError(
      `--client-id must be the service principal's application id (GUID), not ${o.clientId}`,
    );
  const token = readToken(o);
  const { alg, claims } = decode(token);
  progress.step(`finding service principal ${o.clientId}`);
  const sp = await findSp(target, o);
  progress.step('reading its federation policies');
  const policies = await spFederationPolicies(target, sp.accountId, sp.spId);
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const compared = policies.map((p) => ({
    policy: p,
    mismatches: compare(claims, alg, p, sp.accountId, nowSeconds),
  }));
  progress.step(`trying the token exchange at ${host.origin}/oidc/v1/token`);
  const result = await exchange(host.origin, token, o.clientId).catch((e: unknown) => ({
    ok: false as const,
    error: redactError(e),
  }));

  const text = [
    `Workload token (not shown): alg ${show(alg)}, iss ${show(claims.iss)}, aud ${show(claims.aud)}, sub ${show(claims.sub)}, exp ${typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : show(claims.exp)}`,
    `Service principal ${sp.displayName ?? o.clientId} (${o.clientId}, id ${sp.spId}) in account ${sp.accountId}: ${policies.length} federation polic${policies.length === 1 ? 'y' : 'ies'}`,
  ];
  const matching = compared.find((c) => c.mismatches.length === 0);
  if (policies.length === 0)
    text.push(
      '✗ it has no federation policy: create one (account console → service principal → Credentials & secrets → federation policy)',
      `  with issuer ${show(claims.iss)}, subject ${show(claims.sub)} and audience ${show(Array.isArray(claims.aud) ? claims.aud[0] : claims.aud)}`,
    );
  for (const c of compared) {
    if (c.mismatches.length === 0)
      text.push(`✓ policy ${c.policy.policy_id}: issuer, audience, subject and expiry match`);
    else {
      text.push(`✗ policy ${c.policy.policy_id}:`);
      text.push(
        ...table(
          ['CLAIM', 'POLICY FIELD', 'EXPECTED', 'TOKEN HAS'],
          c.mismatches.map((m) => [m.claim, m.field, m.expected, m.actual]),
        ).map((l) => `    ${l}`),
      );
    }
  }
  text.push(
    result.ok
      ? `✓ token exchange at ${host.origin}/oidc/v1/token worked (a ${result.expiresIn ?? '?'} s Databricks token; not shown)`
      : `✗ token exchange at ${host.origin}/oidc/v1/token failed: ${result.error}`,
  );
  if (!result.ok && matching)
    text.push(
      `  the claims match policy ${matching.policy.policy_id}, so the signature is what fails: the policy's jwks_json / jwks_uri (or the issuer's discovery document) must hold the key that signed the token`,
    );
  const aud = (matching?.policy.oidc_policy.audiences?.[0] ??
    (Array.isArray(claims.aud) ? claims.aud[0] : claims.aud)) as string;
  if (result.ok && matching)
    text.push(
      '',
      ...sdkConfig(
        host.origin,
        o.clientId,
        o.tokenFile ? path.resolve(o.tokenFile) : '/var/run/secrets/databricks/token',
        matching.policy,
        aud,
      ),
    );
  return {
    exitCode: result.ok ? 0 : 1,
    data: {
      token: { alg, iss: claims.iss, aud: claims.aud, sub: claims.sub, exp: claims.exp },
      servicePrincipal: { applicationId: o.clientId, id: sp.spId, accountId: sp.accountId },
      policies: compared.map((c) => ({
        policyId: c.policy.policy_id,
        matches: c.mismatches.length === 0,
        mismatches: c.mismatches,
      })),
      exchange: result,
      ...(result.ok && matching
        ? {
            sdk: {
              DATABRICKS_HOST: host.origin,
              DATABRICKS_AUTH_TYPE: 'file-oidc',
              DATABRICKS_OIDC_TOKEN_FILEPATH: o.tokenFile
                ? path.resolve(o.tokenFile)
                : '/var/run/secrets/databricks/token',
              DATABRICKS_CLIENT_ID: o.clientId,
            },
          }
        : {}),
    },
    text,
  };
}
