import type { TokenCredential } from '@azure/core-auth';
import {
  Client,
  GraphError,
  RetryHandlerOptions,
  type GraphRequest,
} from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import { Agent } from 'undici';
import { RESOURCE_SCOPES } from '../constants';
import { ProviderError } from '../errors';
import { redact } from '../redact';
import { deadline, TIMEOUTS } from './timeouts';

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
 * Its fetch goes through an undici agent with connect and per-attempt timeouts, and every call has a
 * deadline that also bounds the client's own retries (TIMEOUTS.graph).
 */
export function createGraphApi(
  credential: TokenCredential,
  baseUrl: string,
  limits: { connectMs: number; requestMs: number; callMs: number } = TIMEOUTS.graph,
): GraphApi {
  const dispatcher = new Agent({
    connect: { timeout: limits.connectMs },
    headersTimeout: limits.requestMs,
    bodyTimeout: limits.requestMs,
  });
  const client = Client.initWithMiddleware({
    authProvider: new TokenCredentialAuthenticationProvider(credential, { scopes: [RESOURCE_SCOPES.graph] }),
    baseUrl: baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`,
    customHosts: new Set([new URL(baseUrl).hostname]),
    // Node's fetch takes an undici dispatcher; the client passes fetchOptions to every fetch.
    fetchOptions: { dispatcher } as unknown as RequestInit,
  });
  // The option is a fetch option; the client types option values as strings and numbers only. The
  // client's own 429/503 retries wait 1 s, then 2.5 s (a Retry-After wins), instead of its default
  // 3, 4.5, 6.5 s: a worker slot rides out a blip, a longer outage goes back to the queue.
  const api = (path: string): GraphRequest =>
    client
      .api(path)
      .option('signal', deadline(limits.callMs) as unknown as string)
      .middlewareOptions([new RetryHandlerOptions(1, 2)]);
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof GraphError) {
        // No answer at all (a dropped connection, a timeout) comes as status -1 (or 0): not a 4xx.
        throw new ProviderError(
          'graph',
          e.statusCode > 0 ? e.statusCode : undefined,
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
        () => api(byAppId(appId)).select(select).get() as Promise<GraphApplication>,
      ),
    addPassword: (appId, displayName, endDateTime) =>
      call(`addPassword on app ${appId}`, () =>
        api(`${byAppId(appId)}/addPassword`).post({
          passwordCredential: { displayName, endDateTime: endDateTime.toISOString() },
        }),
      ),
    removePassword: (appId, keyId) =>
      call(`removePassword ${keyId} on app ${appId}`, () =>
        api(`${byAppId(appId)}/removePassword`).post({ keyId }),
      ),
    sendMail: (sender, message) =>
      call(`sendMail as ${sender}`, () =>
        api(`/users/${encodeURIComponent(sender)}/sendMail`).post({
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
