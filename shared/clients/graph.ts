import type { TokenCredential } from '@azure/core-auth';
import { Client, GraphError } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import { RESOURCE_SCOPES } from '../constants';
import { ProviderError } from '../errors';
import { redact } from '../redact';

export interface GraphApplication {
  id: string;
  appId: string;
  displayName: string;
  tags: string[];
  passwordCredentials: {
    keyId: string;
    displayName: string | null;
    hint?: string | null;
    startDateTime: string;
    endDateTime: string;
  }[];
}

export interface MailMessage {
  subject: string;
  html: string;
  to: string[];
}

const byAppId = (appId: string) => `/applications(appId='${encodeURIComponent(appId)}')`;

/** The Graph calls the service makes, typed. */
export interface GraphApi {
  getApplicationByAppId(appId: string): Promise<GraphApplication>;
  /** Application actions are addressed by `appId` (Graph's alternate key): no object-id lookup first. */
  addPassword(
    appId: string,
    displayName: string,
    endDateTime: Date,
  ): Promise<{ keyId: string; secretText: string; endDateTime: string }>;
  removePassword(appId: string, keyId: string): Promise<void>;
  sendMail(sender: string, message: MailMessage): Promise<void>;
}

/**
 * Graph through @microsoft/microsoft-graph-client with a token-credential auth provider. The client only
 * attaches tokens for Graph hosts and `customHosts`, so a non-default base URL's host is listed there.
 */
export function createGraphApi(credential: TokenCredential, baseUrl: string): GraphApi {
  const client = Client.initWithMiddleware({
    authProvider: new TokenCredentialAuthenticationProvider(credential, { scopes: [RESOURCE_SCOPES.graph] }),
    baseUrl: baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`,
    customHosts: new Set([new URL(baseUrl).hostname]),
  });
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof GraphError) {
        throw new ProviderError(
          'graph',
          e.statusCode || undefined,
          e.code ?? undefined,
          redact(`${what}: ${e.message}`),
          { cause: e },
        );
      }
      throw new ProviderError('graph', undefined, undefined, redact(`${what}: ${(e as Error).message}`), {
        cause: e,
      });
    }
  };
  const select = 'id,appId,displayName,tags,passwordCredentials';
  return {
    getApplicationByAppId: (appId) =>
      call(
        `get application ${appId}`,
        () => client.api(byAppId(appId)).select(select).get() as Promise<GraphApplication>,
      ),
    addPassword: (appId, displayName, endDateTime) =>
      call(`addPassword on app ${appId}`, () =>
        client
          .api(`${byAppId(appId)}/addPassword`)
          .post({ passwordCredential: { displayName, endDateTime: endDateTime.toISOString() } }),
      ),
    removePassword: (appId, keyId) =>
      call(`removePassword ${keyId} on app ${appId}`, () =>
        client.api(`${byAppId(appId)}/removePassword`).post({ keyId }),
      ),
    sendMail: (sender, message) =>
      call(`sendMail as ${sender}`, () =>
        client.api(`/users/${encodeURIComponent(sender)}/sendMail`).post({
          message: {
            subject: message.subject,
            body: { contentType: 'HTML', content: message.html },
            toRecipients: message.to.map((address) => ({ emailAddress: { address } })),
          },
          saveToSentItems: false,
        }),
      ),
  };
}
