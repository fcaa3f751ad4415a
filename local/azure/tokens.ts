import { randomUUID } from 'node:crypto';
import { audienceMatches, JwtClaims, JwtError, SigningKey } from './jwt';
import { allPrincipals, Principal, State } from './state';

/** Resource ids as they appear in scopes (`{resource}/.default`) and in the `aud` claim. */
export const RESOURCES = {
  keyVault: 'https://vault.azure.net',
  graph: 'https://graph.microsoft.com',
  databricks: '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d',
  storage: 'https://storage.azure.com',
  eventGrid: 'https://eventgrid.azure.net',
  tokenExchange: 'api://AzureADTokenExchange',
} as const;

export interface VerifiedToken {
  claims: JwtClaims;
  principal: Principal;
}

/** Issues and checks the tenant's access tokens (one signing key, like an Entra tenant's JWKS). */
export class TokenService {
  readonly key = new SigningKey();

  constructor(
    private readonly state: () => State,
    private readonly issuerBase: () => string,
  ) {}

  /** `https://{main}/{tenant}/v2.0`, the issuer in tokens and in the OIDC document. */
  get issuer(): string {
    return `${this.issuerBase()}/${this.state().tenantId}/v2.0`;
  }

  /** Normalises a scope (`https://vault.azure.net/.default`) or resource to the audience value. */
  static audienceFor(scopeOrResource: string): string {
    return scopeOrResource.replace(/\/\.default$/, '').replace(/\/$/, '');
  }

  issue(
    principal: Principal,
    audience: string,
    lifetimeSeconds = 3600,
    extra: JwtClaims = {},
  ): { token: string; expiresOn: number } {
    const now = Math.floor(Date.now() / 1000);
    const state = this.state();
    const roles =
      state.apps.find((a) => a.servicePrincipal.objectId === principal.objectId)?.graphRoles ??
      state.managedIdentities.find((m) => m.objectId === principal.objectId)?.graphRoles;
    const exp = now + lifetimeSeconds;
    const claims: JwtClaims = {
      aud: audience,
      iss: this.issuer,
      iat: now,
      nbf: now,
      exp,
      tid: state.tenantId,
      oid: principal.objectId,
      sub: principal.objectId,
      appid: principal.appId,
      azp: principal.appId,
      idtyp: 'app',
      ver: '2.0',
      uti: randomUUID(),
      // Entra leaves `roles` out when the principal holds no app roles on the resource.
      ...(roles?.size && audience === RESOURCES.graph ? { roles: [...roles] } : {}),
      ...extra,
    };
    return { token: this.key.sign(claims), expiresOn: exp };
  }

  /**
   * Checks signature, expiry (against real time: tokens are transport auth, and SDKs cache them by
   * the wall clock), issuer, tenant and audience; resolves the principal.
   */
  verify(token: string, audiences: readonly string[]): VerifiedToken {
    const claims = this.key.verify(token, Math.floor(Date.now() / 1000));
    if (claims.iss !== this.issuer) throw new JwtError(`issuer ${String(claims.iss)} is not trusted`);
    if (!audienceMatches(claims, audiences)) {
      throw new JwtError(`audience ${JSON.stringify(claims.aud)} is not one of ${audiences.join(', ')}`);
    }
    const principal = allPrincipals(this.state()).find((p) => p.objectId === claims.oid);
    if (!principal) throw new JwtError('the principal in the token no longer exists');
    return { claims, principal };
  }
}
