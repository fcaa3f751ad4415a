import { createPublicKey, randomUUID, verify, type JsonWebKey } from 'node:crypto';
import { HttpError, json, readJson, Router, type EmulatorRequest } from '../http';
import { newNumericId, type Account, type AccountServicePrincipal, type FederationPolicy } from '../state';

/**
 * Databricks token federation for service principals: the account federation-policy API
 * (`/api/2.0/accounts/{account_id}/servicePrincipals/{sp_id}/federationPolicies`) and the check the
 * workspace and account `/oidc/v1/token` exchange runs against those policies: issuer, audience,
 * subject (or the policy's `subject_claim`), expiry, and an RS256/ES256 signature verified against
 * the policy's `jwks_json`, its `jwks_uri`, or the issuer's OIDC discovery document.
 */

const dbError = (status: number, errorCode: string, message: string) =>
  new HttpError(status, { error_code: errorCode, message });
const invalid = (message: string) => dbError(400, 'INVALID_PARAMETER_VALUE', message);
const invalidGrant = (description: string) =>
  new HttpError(400, { error: 'invalid_grant', error_description: description });

const MAX_POLICIES_PER_SP = 20;
const MAX_PAGE_SIZE = 100;
const POLICY_ID = /^[a-z0-9-]{1,63}$/;

interface OidcPolicyInput {
  issuer?: unknown;
  audiences?: unknown;
  subject?: unknown;
  subject_claim?: unknown;
  jwks_json?: unknown;
  jwks_uri?: unknown;
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function parseJwks(text: string, field: string): { keys: JsonWebKey[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid(`oidc_policy.${field} is not valid JSON.`);
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw invalid(`oidc_policy.${field} must be a JWKS: {"keys": [...]}.`);
  return { keys: keys as JsonWebKey[] };
}

/** Validates `oidc_policy` of a create or update, as the account API does; returns the stored form. */
function oidcPolicy(input: OidcPolicyInput | undefined): FederationPolicy['oidc_policy'] {
  if (!input || typeof input !== 'object') throw invalid('oidc_policy is required.');
  const { issuer, audiences, subject, subject_claim, jwks_json, jwks_uri } = input;
  if (!isString(issuer)) throw invalid('oidc_policy.issuer is required.');
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw invalid(`oidc_policy.issuer '${issuer}' is not a URL.`);
  }
  if (url.protocol !== 'https:') throw invalid(`oidc_policy.issuer '${issuer}' must be an https URL.`);
  if (!isString(subject)) throw invalid('oidc_policy.subject is required for a service principal policy.');
  if (audiences !== undefined && (!Array.isArray(audiences) || !audiences.every(isString)))
    throw invalid('oidc_policy.audiences must be a list of strings.');
  if (subject_claim !== undefined && !isString(subject_claim))
    throw invalid('oidc_policy.subject_claim must be a claim name.');
  if (jwks_json !== undefined && jwks_uri !== undefined)
    throw invalid('Give at most one of oidc_policy.jwks_json and oidc_policy.jwks_uri.');
  if (jwks_json !== undefined) {
    if (!isString(jwks_json)) throw invalid('oidc_policy.jwks_json must be a JSON string.');
    parseJwks(jwks_json, 'jwks_json');
  }
  if (jwks_uri !== undefined && (!isString(jwks_uri) || !/^https:\/\//.test(jwks_uri)))
    throw invalid('oidc_policy.jwks_uri must be an https URL.');
  return {
    issuer,
    audiences: (audiences as string[] | undefined) ?? [],
    subject,
    subject_claim: (subject_claim as string | undefined) ?? 'sub',
    ...(jwks_json !== undefined ? { jwks_json: jwks_json as string } : {}),
    ...(jwks_uri !== undefined ? { jwks_uri: jwks_uri as string } : {}),
  };
}

/** A new policy record (the seed and the create route share it). */
export function newFederationPolicy(
  accountId: string,
  spId: string,
  input: { policy_id?: string; description?: string; oidc_policy: OidcPolicyInput },
  now: number,
): FederationPolicy {
  const policyId = input.policy_id ?? newNumericId();
  return {
    policy_id: policyId,
    uid: randomUUID(),
    name: `accounts/${accountId}/servicePrincipals/${spId}/federationPolicies/${policyId}`,
    description: input.description ?? '',
    create_time: new Date(now).toISOString(),
    update_time: new Date(now).toISOString(),
    oidc_policy: oidcPolicy(input.oidc_policy),
  };
}

/**
 * The federation-policy routes on the account host. `authorize` authenticates an account admin and
 * returns the account in the path (the same rule as the account's SP secrets).
 */
export function federationPolicyRoutes(
  router: Router,
  now: () => number,
  authorize: (req: EmulatorRequest) => Account,
): void {
  const base = '/api/2.0/accounts/:accountId/servicePrincipals/:spId/federationPolicies';
  const target = (req: EmulatorRequest) => {
    const account = authorize(req);
    const sp = account.servicePrincipals.find((s) => s.id === req.params.spId);
    if (!sp)
      throw dbError(
        404,
        'RESOURCE_DOES_NOT_EXIST',
        `Service principal ${req.params.spId ?? ''} does not exist.`,
      );
    return { account, sp };
  };
  const policy = (sp: AccountServicePrincipal, id: string | undefined) => {
    const p = sp.federationPolicies.find((x) => x.policy_id === id);
    if (!p) throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Federation policy ${id ?? ''} does not exist.`);
    return p;
  };

  router
    .add('POST', base, (req) => {
      const { account, sp } = target(req);
      const body = readJson<{ description?: unknown; oidc_policy?: OidcPolicyInput }>(req, invalid);
      const policyId = req.query.get('policy_id') ?? undefined;
      if (policyId !== undefined && !POLICY_ID.test(policyId))
        throw invalid(`policy_id '${policyId}' must be 1-63 lowercase letters, digits and dashes.`);
      if (policyId !== undefined && sp.federationPolicies.some((p) => p.policy_id === policyId))
        throw dbError(409, 'RESOURCE_ALREADY_EXISTS', `Federation policy ${policyId} already exists.`);
      if (sp.federationPolicies.length >= MAX_POLICIES_PER_SP)
        throw dbError(
          400,
          'RESOURCE_LIMIT_EXCEEDED',
          `A service principal can have at most ${MAX_POLICIES_PER_SP} federation policies.`,
        );
      if (body.description !== undefined && typeof body.description !== 'string')
        throw invalid('description must be a string.');
      const created = newFederationPolicy(
        account.accountId,
        sp.id,
        { policy_id: policyId, description: body.description, oidc_policy: body.oidc_policy ?? {} },
        now(),
      );
      sp.federationPolicies.push(created);
      return json(200, created);
    })
    .add('GET', base, (req) => {
      const { sp } = target(req);
      const size = Number(req.query.get('page_size') ?? MAX_PAGE_SIZE);
      if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE)
        throw invalid(`page_size must be from 1 to ${MAX_PAGE_SIZE}.`);
      const token = req.query.get('page_token');
      const offset = token === null ? 0 : Number(Buffer.from(token, 'base64url').toString('utf8'));
      if (!Number.isInteger(offset) || offset < 0) throw invalid('page_token is not valid.');
      const page = sp.federationPolicies.slice(offset, offset + size);
      const next = offset + size < sp.federationPolicies.length ? offset + size : undefined;
      return json(200, {
        policies: page,
        ...(next !== undefined ? { next_page_token: Buffer.from(String(next)).toString('base64url') } : {}),
      });
    })
    .add('GET', `${base}/:policyId`, (req) => json(200, policy(target(req).sp, req.params.policyId)))
    .add('PATCH', `${base}/:policyId`, (req) => {
      const existing = policy(target(req).sp, req.params.policyId);
      const body = readJson<{ description?: unknown; oidc_policy?: OidcPolicyInput }>(req, invalid);
      const mask = (req.query.get('update_mask') ?? 'description,oidc_policy')
        .split(',')
        .map((s) => s.trim());
      const unknown = mask.find((m) => m !== 'description' && m !== 'oidc_policy');
      if (unknown) throw invalid(`update_mask field '${unknown}' cannot be updated.`);
      const next = { ...existing };
      if (mask.includes('description') && body.description !== undefined) {
        if (typeof body.description !== 'string') throw invalid('description must be a string.');
        next.description = body.description;
      }
      if (mask.includes('oidc_policy') && body.oidc_policy !== undefined)
        next.oidc_policy = oidcPolicy(body.oidc_policy);
      next.update_time = new Date(now()).toISOString();
      Object.assign(existing, next);
      return json(200, existing);
    })
    .add('DELETE', `${base}/:policyId`, (req) => {
      const { sp } = target(req);
      const p = policy(sp, req.params.policyId);
      sp.federationPolicies.splice(sp.federationPolicies.indexOf(p), 1);
      return json(200, {});
    });
}

interface JwtParts {
  header: { alg?: string; kid?: string };
  claims: Record<string, unknown>;
  signed: Buffer;
  signature: Buffer;
}

function parseJwt(token: string): JwtParts | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const [h, p, s] = parts as [string, string, string];
    return {
      header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as JwtParts['header'],
      claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
      signed: Buffer.from(`${h}.${p}`),
      signature: Buffer.from(s, 'base64url'),
    };
  } catch {
    return undefined;
  }
}

async function fetchJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

/** The keys a policy trusts: its own JWKS, its JWKS URI, or the issuer's discovery document. */
async function policyKeys(p: FederationPolicy['oidc_policy']): Promise<JsonWebKey[]> {
  if (p.jwks_json) return parseJwks(p.jwks_json, 'jwks_json').keys;
  const uri =
    p.jwks_uri ??
    String(
      (
        (await fetchJson(`${p.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)) as {
          jwks_uri?: unknown;
        }
      ).jwks_uri ?? '',
    );
  const jwks = (await fetchJson(uri)) as { keys?: JsonWebKey[] };
  return jwks.keys ?? [];
}

function signatureValid(jwt: JwtParts, keys: JsonWebKey[]): boolean {
  const alg = jwt.header.alg;
  const candidates = keys.filter((k) => !jwt.header.kid || !k.kid || k.kid === jwt.header.kid);
  return candidates.some((jwk) => {
    try {
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      if (alg === 'RS256' && key.asymmetricKeyType === 'rsa')
        return verify('RSA-SHA256', jwt.signed, key, jwt.signature);
      if (alg === 'ES256' && key.asymmetricKeyType === 'ec')
        return verify('sha256', jwt.signed, { key, dsaEncoding: 'ieee-p1363' }, jwt.signature);
      return false;
    } catch {
      return false;
    }
  });
}

/** Why one policy refuses the token (claims first, then the signature); undefined if it accepts it. */
async function refusal(
  jwt: JwtParts,
  policy: FederationPolicy,
  accountId: string,
  nowSeconds: number,
): Promise<string | undefined> {
  const p = policy.oidc_policy;
  const { claims } = jwt;
  if (claims.iss !== p.issuer) return `issuer '${String(claims.iss)}' is not '${p.issuer}'`;
  const audiences = p.audiences.length > 0 ? p.audiences : [accountId];
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.some((a) => typeof a === 'string' && audiences.includes(a)))
    return `audience ${JSON.stringify(claims.aud)} is not one of ${audiences.join(', ')}`;
  const subjectClaim = p.subject_claim ?? 'sub';
  if (claims[subjectClaim] !== p.subject)
    return `${subjectClaim} '${String(claims[subjectClaim])}' is not '${p.subject}'`;
  if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds) return 'the token is expired';
  if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds + 300) return 'the token is not yet valid';
  let keys: JsonWebKey[];
  try {
    keys = await policyKeys(p);
  } catch (e) {
    return `the issuer's signing keys could not be fetched (${(e as Error).message})`;
  }
  if (!signatureValid(jwt, keys)) return "the signature does not verify against the policy's keys";
  return undefined;
}

/**
 * Token exchange against a service principal's federation policies: returns the SP when one policy
 * accepts the subject token, or throws `invalid_grant` naming why each policy refused it.
 */
export async function federatedServicePrincipal(
  form: URLSearchParams,
  server: {
    findSp: (applicationId: string | null | undefined) => AccountServicePrincipal | undefined;
    accountId: string;
    kind: string;
  },
  nowSeconds: number,
): Promise<AccountServicePrincipal> {
  if (form.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:jwt') {
    throw new HttpError(400, {
      error: 'invalid_request',
      error_description: 'subject_token_type must be urn:ietf:params:oauth:token-type:jwt.',
    });
  }
  const jwt = parseJwt(form.get('subject_token') ?? '');
  if (!jwt) throw invalidGrant('The subject token could not be validated: malformed JWT.');
  if (jwt.header.alg !== 'RS256' && jwt.header.alg !== 'ES256')
    throw invalidGrant(
      `The subject token could not be validated: unsupported alg ${String(jwt.header.alg)} (RS256 or ES256).`,
    );
  const clientId = form.get('client_id');
  const sp = server.findSp(clientId);
  if (!sp) {
    throw invalidGrant(
      clientId
        ? `Service principal ${clientId} is not in this ${server.kind}.`
        : 'No account federation policy matches the subject token; pass client_id for a service principal federation policy.',
    );
  }
  for (const policy of sp.federationPolicies) {
    if ((await refusal(jwt, policy, server.accountId, nowSeconds)) === undefined) return sp;
  }
  // Like the real service, the answer does not say which check failed (`federation check` does).
  const { iss, sub, aud } = jwt.claims;
  throw invalidGrant(
    `The subject token (issuer '${String(iss)}', subject '${String(sub)}', audience '${String(aud)}') does not match any federation policy of service principal ${sp.applicationId}.`,
  );
}
