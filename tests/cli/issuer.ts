import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ensureCertificates } from '../../local/azure/certs';

interface Key {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  jwk: Record<string, unknown>;
}

function newKey(alg: 'RS256' | 'ES256'): Key {
  const pair =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  return {
    kid,
    alg,
    privateKey: pair.privateKey,
    jwk: { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
  };
}

/**
 * A workload's OIDC issuer (an AKS cluster's, say): an HTTPS discovery document and JWKS on
 * localhost, and tokens signed with node:crypto (RS256 with the published key, ES256 with a key whose
 * JWKS a policy carries inline).
 */
export class WorkloadIssuer {
  readonly rsa = newKey('RS256');
  readonly ec = newKey('ES256');
  private server?: Server;
  url = '';

  async start(): Promise<this> {
    const certs = ensureCertificates();
    this.server = createServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => {
      const body =
        req.url === '/.well-known/openid-configuration'
          ? { issuer: this.url, jwks_uri: `${this.url}/openid/v1/jwks` }
          : req.url === '/openid/v1/jwks'
            ? { keys: [this.rsa.jwk] }
            : undefined;
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: 'not found' }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.url = `https://localhost:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The inline JWKS of the ES256 key, as a policy's `jwks_json`. */
  ecJwks(): string {
    return JSON.stringify({ keys: [this.ec.jwk] });
  }

  sign(claims: Record<string, unknown>, key: Key = this.rsa): string {
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${enc({ alg: key.alg, typ: 'JWT', kid: key.kid })}.${enc(claims)}`;
    const signature =
      key.alg === 'RS256'
        ? sign('RSA-SHA256', Buffer.from(input), key.privateKey)
        : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }

  /** A service-account token as the kubelet projects it. */
  serviceAccountToken(overrides: Record<string, unknown> = {}, key?: Key): string {
    const now = Math.floor(Date.now() / 1000);
    return this.sign(
      {
        iss: this.url,
        sub: 'system:serviceaccount:etl:etl-pipeline',
        aud: ['api://AzureADTokenExchange'],
        iat: now,
        nbf: now,
        exp: now + 3600,
        'kubernetes.io': { namespace: 'etl', serviceaccount: { name: 'etl-pipeline' } },
        ...overrides,
      },
      key,
    );
  }
}

/** A key no policy trusts (for the bad-signature case). */
export const strangerKey = () => newKey('RS256');
