import { createPublicKey, generateKeyPairSync, KeyObject, randomUUID, sign, verify } from 'node:crypto';

export type JwtClaims = Record<string, unknown> & {
  iss?: string;
  aud?: string | string[];
  sub?: string;
  exp?: number;
  nbf?: number;
  iat?: number;
};

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** Why a token was refused; the services map it to their own error bodies. */
export class JwtError extends Error {
  override name = 'JwtError';
}

/** An RS256 signing key with its JWKS form, like an Entra tenant's token-signing key. */
export class SigningKey {
  readonly kid = randomUUID();
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;

  constructor() {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  sign(claims: JwtClaims): string {
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: this.kid }));
    const payload = b64url(JSON.stringify(claims));
    const signature = sign('RSA-SHA256', Buffer.from(`${header}.${payload}`), this.privateKey);
    return `${header}.${payload}.${b64url(signature)}`;
  }

  jwk(): Record<string, string> {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return { kty: 'RSA', use: 'sig', alg: 'RS256', kid: this.kid, n: String(jwk.n), e: String(jwk.e) };
  }

  /** Verifies signature, expiry and not-before; returns the claims. Audience is the caller's check. */
  verify(token: string, nowSeconds: number): JwtClaims {
    const claims = decodeJwt(token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const key = createPublicKey({ key: this.jwk(), format: 'jwk' });
    if (
      !verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'))
    ) {
      throw new JwtError('signature is invalid');
    }
    if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds) throw new JwtError('token is expired');
    if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds + 300)
      throw new JwtError('token is not yet valid');
    return claims;
  }
}

/** Decodes a JWT's payload without checking it. */
export function decodeJwt(token: string): JwtClaims {
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('not a JWT');
  try {
    const header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8')) as {
      alg?: string;
    };
    if (header.alg !== 'RS256') throw new JwtError(`unsupported alg ${String(header.alg)}`);
    return JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as JwtClaims;
  } catch (e) {
    if (e instanceof JwtError) throw e;
    throw new JwtError('malformed JWT');
  }
}

export function audienceMatches(claims: JwtClaims, accepted: readonly string[]): boolean {
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  return aud.some((a) => typeof a === 'string' && accepted.includes(a.replace(/\/$/, '')));
}
