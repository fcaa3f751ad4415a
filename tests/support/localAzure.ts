import { ClientSecretCredential, type TokenCredential } from '@azure/identity';
import { LocalAzure } from '../../local/azure';
import { IDENTITY_HEADER } from '../../local/azure/services/entra';

/**
 * Starts a local Azure for one test file (its own ports and state) and stops it after the file.
 * Call at the top level of a test file.
 */
export function useLocalAzure(): () => LocalAzure {
  let azure: LocalAzure | undefined;
  beforeAll(async () => {
    azure = await LocalAzure.start();
  });
  afterAll(async () => {
    await azure?.stop();
  });
  return () => {
    if (!azure) throw new Error('local Azure is not started yet (use it inside a test or hook)');
    return azure;
  };
}

/** A credential for an app registration, against the local Entra. */
export function appCredential(azure: LocalAzure, appId: string, secret: string): TokenCredential {
  return new ClientSecretCredential(azure.state.tenantId, appId, secret, {
    authorityHost: azure.authorityHost,
    disableInstanceDiscovery: true,
  });
}

/**
 * Points ManagedIdentityCredential (App Service style) at the local managed-identity endpoint.
 * Returns a function that puts the previous environment back.
 */
export function useManagedIdentityEnv(azure: LocalAzure): () => void {
  const saved = {
    IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT,
    IDENTITY_HEADER: process.env.IDENTITY_HEADER,
  };
  process.env.IDENTITY_ENDPOINT = azure.identityEndpoint;
  process.env.IDENTITY_HEADER = IDENTITY_HEADER;
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}
