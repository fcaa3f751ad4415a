/**
 * Token federation: the emulated account federation-policy API, the workspace token exchange that
 * enforces it, and `kv-rotator federation check` with workload tokens from a local issuer: one that
 * matches, one per mismatching claim, one with a signature no policy trusts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { embeddedTarget } from '../../cli/target';
import { RESOURCE_SCOPES } from '../../shared/constants';
import { appCredential } from '../support/localAzure';
import { strangerKey, WorkloadIssuer } from './issuer';
import { useCliDemo } from './support';

const { azure, demo, run } = useCliDemo();
const issuer = new WorkloadIssuer();
const dir = mkdtempSync(path.join(tmpdir(), 'kv-rotator-fed-'));
const AUDIENCE = 'api://AzureADTokenExchange';
const SUBJECT = 'system:serviceaccount:etl:etl-pipeline';

let adminToken: string;
const policies = () =>
  `${azure().accountsUrl}/api/2.0/accounts/${demo().accountId}/servicePrincipals/${demo().spId}/federationPolicies`;
async function call(url: string, init: { method?: string; json?: unknown; token?: string } = {}) {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${init.token ?? adminToken}`, 'content-type': 'application/json' },
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}
async function exchange(subjectToken: string) {
  const res = await fetch(`${demo().workspaceUrl}/oidc/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subjectToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      client_id: demo().spApplicationId,
      scope: 'all-apis',
    }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}
const tokenFile = (name: string, token: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, token);
  return file;
};
const host = () => new URL(demo().workspaceUrl).host;
const check = (...extra: string[]) =>
  run('federation', 'check', '--host', host(), '--client-id', demo().spApplicationId, ...extra);

beforeAll(async () => {
  await issuer.start();
  const target = embeddedTarget(azure(), demo().env);
  adminToken = (await target.services.credential.getToken(RESOURCE_SCOPES.databricks))!.token;
  await target.close();
});
afterAll(() => issuer.stop());

describe('account federation-policy API', () => {
  test('create, get, list (paged), update, delete', async () => {
    const created = await call(`${policies()}?policy_id=aks-local`, {
      method: 'POST',
      json: {
        description: 'local AKS',
        oidc_policy: { issuer: issuer.url, subject: SUBJECT, audiences: [AUDIENCE] },
      },
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      policy_id: 'aks-local',
      name: `accounts/${demo().accountId}/servicePrincipals/${demo().spId}/federationPolicies/aks-local`,
      description: 'local AKS',
      oidc_policy: { issuer: issuer.url, subject: SUBJECT, audiences: [AUDIENCE], subject_claim: 'sub' },
    });
    expect(created.body.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(created.body.create_time)).not.toBeNaN();

    const inline = await call(policies(), {
      method: 'POST',
      json: {
        oidc_policy: {
          issuer: `${issuer.url}/inline`,
          subject: 'nightly-etl',
          subject_claim: 'job',
          jwks_json: issuer.ecJwks(),
        },
      },
    });
    expect(inline.status).toBe(200);
    expect(inline.body.policy_id).toMatch(/^\d+$/);

    expect((await call(`${policies()}/aks-local`)).body.policy_id).toBe('aks-local');
    const page1 = await call(`${policies()}?page_size=2`);
    expect(page1.body.policies).toHaveLength(2); // the demo's aks-etl, then aks-local
    const page2 = await call(`${policies()}?page_size=2&page_token=${page1.body.next_page_token}`);
    expect(page2.body.policies.map((p: { policy_id: string }) => p.policy_id)).toEqual([
      inline.body.policy_id,
    ]);
    expect(page2.body.next_page_token).toBeUndefined();

    const updated = await call(`${policies()}/aks-local?update_mask=description`, {
      method: 'PATCH',
      json: { description: 'renamed', oidc_policy: { issuer: 'https://ignored' } },
    });
    expect(updated.body).toMatchObject({ description: 'renamed', oidc_policy: { issuer: issuer.url } });

    const temp = await call(`${policies()}?policy_id=temp`, {
      method: 'POST',
      json: { oidc_policy: { issuer: issuer.url, subject: 'x' } },
    });
    expect(temp.status).toBe(200);
    expect((await call(`${policies()}/temp`, { method: 'DELETE' })).status).toBe(200);
    expect((await call(`${policies()}/temp`)).body).toMatchObject({ error_code: 'RESOURCE_DOES_NOT_EXIST' });
  });

  test.each([
    [
      'a duplicate policy id',
      '?policy_id=aks-local',
      { oidc_policy: { issuer: 'https://a.example', subject: 's' } },
      409,
      'RESOURCE_ALREADY_EXISTS',
    ],
    [
      'an http issuer',
      '',
      { oidc_policy: { issuer: 'http://a.example', subject: 's' } },
      400,
      'INVALID_PARAMETER_VALUE',
    ],
    ['no subject', '', { oidc_policy: { issuer: 'https://a.example' } }, 400, 'INVALID_PARAMETER_VALUE'],
    [
      'a JWKS that is not JSON',
      '',
      { oidc_policy: { issuer: 'https://a.example', subject: 's', jwks_json: '{' } },
      400,
      'INVALID_PARAMETER_VALUE',
    ],
    [
      'both jwks_json and jwks_uri',
      '',
      {
        oidc_policy: {
          issuer: 'https://a.example',
          subject: 's',
          jwks_json: issuer.ecJwks(),
          jwks_uri: 'https://a.example/keys',
        },
      },
      400,
      'INVALID_PARAMETER_VALUE',
    ],
  ])('refuses %s', async (_case, query, body, status, code) => {
    const res = await call(`${policies()}${query}`, { method: 'POST', json: body });
    expect(res.status).toBe(status);
    expect(res.body.error_code).toBe(code);
  });

  test('only account admins may read or write policies', async () => {
    const reader = appCredential(azure(), demo().reader.appId, demo().reader.secret);
    const token = (await reader.getToken(RESOURCE_SCOPES.databricks))!.token;
    expect((await call(policies(), { token })).status).toBe(403);
  });
});

describe('the workspace token exchange enforces the policies', () => {
  test('RS256 against the issuer’s discovery document; ES256 against inline jwks_json with a subject_claim', async () => {
    expect((await exchange(issuer.serviceAccountToken())).status).toBe(200);
    const now = Math.floor(Date.now() / 1000);
    const es = issuer.sign(
      {
        iss: `${issuer.url}/inline`,
        aud: demo().accountId,
        job: 'nightly-etl',
        sub: 'anything',
        exp: now + 600,
      },
      issuer.ec,
    );
    expect((await exchange(es)).status).toBe(200);
  });

  test.each([
    ['issuer', { iss: 'https://evil.example' }],
    ['audience', { aud: 'api://other' }],
    ['subject', { sub: 'system:serviceaccount:etl:other' }],
    ['expiry', { exp: Math.floor(Date.now() / 1000) - 60 }],
  ])('a wrong %s is invalid_grant', async (_case, overrides) => {
    const res = await exchange(issuer.serviceAccountToken(overrides));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  test('a signature no policy key verifies is invalid_grant; so is an HS256 token', async () => {
    expect((await exchange(issuer.serviceAccountToken({}, strangerKey()))).body.error).toBe('invalid_grant');
    const [, payload] = issuer.serviceAccountToken().split('.');
    const hs = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${payload}.c2ln`;
    expect((await exchange(hs)).body.error_description).toContain('unsupported alg HS256');
  });
});

describe('kv-rotator federation check', () => {
  test('a matching token: the exchange works and the exact SDK configuration is printed', async () => {
    const token = issuer.serviceAccountToken();
    const file = tokenFile('token', token);
    const r = await check('--token-file', file);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain(token);
    expect(r.out).toContain('✓ policy aks-local: issuer, audience, subject and expiry match');
    expect(r.out).toContain(`✓ token exchange at ${demo().workspaceUrl}/oidc/v1/token worked`);
    for (const line of [
      `DATABRICKS_HOST=${demo().workspaceUrl}`,
      'DATABRICKS_AUTH_TYPE=file-oidc',
      `DATABRICKS_OIDC_TOKEN_FILEPATH=${file}`,
      `DATABRICKS_CLIENT_ID=${demo().spApplicationId}`,
      'serviceAccountName: etl-pipeline',
      `audience: ${AUDIENCE}`,
      `mountPath: ${dir}`,
    ])
      expect(r.out).toContain(line);
    expect(r.out).toMatch(/kubelet rewrites the projected token/);

    process.env.WORKLOAD_TOKEN = token;
    const viaEnv = await check('--token-env', 'WORKLOAD_TOKEN', '--json');
    delete process.env.WORKLOAD_TOKEN;
    expect(viaEnv.code).toBe(0);
    expect(viaEnv.out).not.toContain(token);
    expect(JSON.parse(viaEnv.out).sdk).toEqual({
      DATABRICKS_HOST: demo().workspaceUrl,
      DATABRICKS_AUTH_TYPE: 'file-oidc',
      DATABRICKS_OIDC_TOKEN_FILEPATH: '/var/run/secrets/databricks/token',
      DATABRICKS_CLIENT_ID: demo().spApplicationId,
    });
  });

  test.each<[string, Record<string, unknown>, string, () => string]>([
    ['iss', { iss: 'https://evil.example' }, 'oidc_policy.issuer', () => issuer.url],
    ['aud', { aud: ['api://other'] }, 'oidc_policy.audiences', () => AUDIENCE],
    [
      'sub',
      { sub: 'system:serviceaccount:etl:other' },
      'oidc_policy.subject (subject_claim sub)',
      () => SUBJECT,
    ],
    ['exp', { exp: Math.floor(Date.now() / 1000) - 60 }, '(token lifetime)', () => 'after '],
  ])(
    'a wrong %s: which claim, which policy field, the value expected',
    async (claim, overrides, field, expected) => {
      const token = issuer.serviceAccountToken(overrides);
      const r = await check('--token-file', tokenFile(`token-${claim}`, token), '--json');
      expect(r.code).toBe(1);
      expect(r.out).not.toContain(token);
      const data = JSON.parse(r.out) as {
        policies: { policyId: string; mismatches: { claim: string; field: string; expected: string }[] }[];
        exchange: { ok: boolean };
      };
      expect(data.exchange.ok).toBe(false);
      const local = data.policies.find((p) => p.policyId === 'aks-local')!;
      expect(local.mismatches).toHaveLength(1);
      expect(local.mismatches[0]).toMatchObject({ claim, field });
      expect(local.mismatches[0]!.expected).toContain(expected());
      const text = await check('--token-file', tokenFile(`token-${claim}`, token));
      expect(text.out).toMatch(
        new RegExp(`✗ policy aks-local:\\n\\s+CLAIM\\s+POLICY FIELD\\s+EXPECTED\\s+TOKEN HAS`),
      );
    },
  );

  test('claims that match but a signature no policy trusts: the exchange fails and says why', async () => {
    const r = await check(
      '--token-file',
      tokenFile('token-sig', issuer.serviceAccountToken({}, strangerKey())),
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain('✓ policy aks-local: issuer, audience, subject and expiry match');
    expect(r.out).toContain('✗ token exchange');
    expect(r.out).toContain('so the signature is what fails');
  });

  test.each([
    [['--token-file', 'x', '--token-env', 'Y']],
    [[]],
    [['--token-env', 'KV_ROTATOR_UNSET_VARIABLE']],
  ])('usage errors exit 2: %j', async (extra) => {
    expect((await check(...extra)).code).toBe(2);
  });

  test('a host that is not Databricks nor allowlisted is refused before any token is sent', async () => {
    const r = await run(
      'federation',
      'check',
      '--host',
      'evil.example',
      '--client-id',
      demo().spApplicationId,
      '--token-file',
      tokenFile('t', issuer.serviceAccountToken()),
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('not an Azure Databricks host');
  });
});
