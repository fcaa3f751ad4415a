import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import type { Settings } from '../config';
import { timeoutPolicies, TIMEOUTS } from './timeouts';

const PUBLIC_AUTHORITIES = [
  'login.microsoftonline.com',
  'login.microsoftonline.us',
  'login.chinacloudapi.cn',
];

/** Instance discovery only works against Microsoft's own authorities; a local or private one skips it. */
export function isPublicAuthority(authorityHost: string): boolean {
  return PUBLIC_AUTHORITIES.includes(new URL(authorityHost).hostname);
}

/**
 * The service's own identity. In Azure: its managed identity (user-assigned when AZURE_CLIENT_ID is
 * set). Locally: the same managed-identity code path, pointed at the local Azure's endpoint through
 * IDENTITY_ENDPOINT / IDENTITY_HEADER; on a developer machine against a real vault, the Azure CLI login.
 */
export function createServiceCredential(settings: Settings): TokenCredential {
  return new DefaultAzureCredential({
    managedIdentityClientId: settings.AZURE_CLIENT_ID,
    tenantId: settings.AZURE_TENANT_ID,
    authorityHost: settings.AZURE_AUTHORITY_HOST,
    disableInstanceDiscovery: !isPublicAuthority(settings.AZURE_AUTHORITY_HOST),
    // Token requests are bounded like every other call (tokens are cached, so this is rare).
    retryOptions: { maxRetries: 3, maxRetryDelayInMs: 2_000 },
    additionalPolicies: timeoutPolicies(TIMEOUTS.identity),
  });
}
