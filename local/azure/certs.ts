import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import forge from 'node-forge';

/** Where generated certificates live; git-ignored. */
export const CERT_DIR = path.resolve(__dirname, '..', '..', '.local', 'certs');

export interface Certificates {
  /** PEM of the local CA; what clients must trust (NODE_EXTRA_CA_CERTS). */
  caPem: string;
  caPath: string;
  /** Leaf certificate and key for localhost, 127.0.0.1 and ::1, signed by the CA. */
  certPem: string;
  keyPem: string;
}

function rsaKeys(): {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
  pem: string;
} {
  // Node's native key generation is ~100x faster than forge's pure-JS one.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return {
    privateKey: forgeKey,
    publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e),
    pem,
  };
}

function baseCert(publicKey: forge.pki.rsa.PublicKey, years: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive serial: a leading 0x00..0x7f byte keeps the DER integer positive.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + years * 365 * 24 * 3600_000);
  return cert;
}

function createCa(): { cert: forge.pki.Certificate; keyPem: string; key: forge.pki.rsa.PrivateKey } {
  const keys = rsaKeys();
  const cert = baseCert(keys.publicKey, 10);
  const subject = [{ name: 'commonName', value: 'kv-rotator local Azure CA' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert, keyPem: keys.pem, key: keys.privateKey };
}

function createLeaf(
  ca: forge.pki.Certificate,
  caKey: forge.pki.rsa.PrivateKey,
): { certPem: string; keyPem: string } {
  const keys = rsaKeys();
  const cert = baseCert(keys.publicKey, 2);
  cert.setSubject([{ name: 'commonName', value: 'localhost' }]);
  cert.setIssuer(ca.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        { type: 2, value: 'localhost' },
        { type: 7, ip: '127.0.0.1' },
        { type: 7, ip: '::1' },
      ],
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.pem };
}

function stillValid(pem: string): boolean {
  const cert = forge.pki.certificateFromPem(pem);
  return cert.validity.notAfter.getTime() > Date.now() + 7 * 24 * 3600_000;
}

/** Returns the local CA and leaf certificate, generating them on first use. */
export function ensureCertificates(dir: string = CERT_DIR): Certificates {
  const caPath = path.join(dir, 'ca.pem');
  const caKeyPath = path.join(dir, 'ca-key.pem');
  const certPath = path.join(dir, 'localhost.pem');
  const keyPath = path.join(dir, 'localhost-key.pem');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(caPath) || !existsSync(caKeyPath) || !stillValid(readFileSync(caPath, 'utf8'))) {
    const ca = createCa();
    writeFileSync(caKeyPath, ca.keyPem, { mode: 0o600 });
    writeFileSync(caPath, forge.pki.certificateToPem(ca.cert));
  }
  if (!existsSync(certPath) || !existsSync(keyPath) || !stillValid(readFileSync(certPath, 'utf8'))) {
    const ca = forge.pki.certificateFromPem(readFileSync(caPath, 'utf8'));
    const caKey = forge.pki.privateKeyFromPem(readFileSync(caKeyPath, 'utf8'));
    const leaf = createLeaf(ca, caKey);
    writeFileSync(keyPath, leaf.keyPem, { mode: 0o600 });
    writeFileSync(certPath, leaf.certPem);
  }
  return {
    caPem: readFileSync(caPath, 'utf8'),
    caPath,
    certPem: readFileSync(certPath, 'utf8'),
    keyPem: readFileSync(keyPath, 'utf8'),
  };
}
