import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { NameOrderedMap } from './services/keyvault-store';

/**
 * The emulated tenant. Services read and change it; the control API seeds and resets it.
 * Provider credentials (app secrets, PATs, SP secrets) are kept only as hashes, like the real services.
 */

export const KEY_VAULT_ROLES = [
  'Key Vault Secrets Officer',
  'Key Vault Secrets User',
  'Key Vault Reader',
  // The custom role infra/app/vault-role.bicep defines for the rotator.
  'Key Vault credential rotator',
] as const;
export type KeyVaultRole = (typeof KEY_VAULT_ROLES)[number];

export const GRAPH_ROLES = [
  'Application.ReadWrite.OwnedBy',
  'Application.ReadWrite.All',
  'Mail.Send',
] as const;

export const SIGN_IN_AUDIENCES = [
  'AzureADMyOrg',
  'AzureADMultipleOrgs',
  'AzureADandPersonalMicrosoftAccount',
  'PersonalMicrosoftAccount',
] as const;

const isoOrUnix = z.union([z.iso.datetime({ offset: true }), z.number().int().nonnegative()]);
const name = z.string().min(1).max(127);

export const seedSchema = z
  .object({
    managedIdentities: z
      .array(
        z.strictObject({
          name,
          clientId: z.uuid().optional(),
          principalId: z.uuid().optional(),
          /** Graph application permissions granted to the identity (e.g. the rotator's Mail.Send). */
          graphRoles: z.array(z.enum(GRAPH_ROLES)).optional(),
        }),
      )
      .optional(),
    apps: z
      .array(
        z.strictObject({
          displayName: z.string().min(1),
          appId: z.uuid().optional(),
          objectId: z.uuid().optional(),
          /** Principals (object id, app id or managed identity name) that own the application. */
          owners: z.array(z.string()).optional(),
          /** Graph application permissions granted to this app's service principal. */
          graphRoles: z.array(z.enum(GRAPH_ROLES)).optional(),
          secrets: z
            .array(
              z.strictObject({
                value: z.string().min(1),
                keyId: z.uuid().optional(),
                displayName: z.string().optional(),
                endDateTime: isoOrUnix.optional(),
              }),
            )
            .optional(),
          federatedCredentials: z
            .array(
              z.strictObject({
                issuer: z.url(),
                subject: z.string().min(1),
                audiences: z.array(z.string()).min(1),
              }),
            )
            .optional(),
          /** Free-form tags on the application object (e.g. a rotation binding). */
          tags: z.array(z.string()).optional(),
          /** Who may sign in; personal Microsoft account audiences allow only 2 client secrets. */
          signInAudience: z.enum(SIGN_IN_AUDIENCES).optional(),
        }),
      )
      .optional(),
    users: z.array(z.strictObject({ userPrincipalName: z.email(), id: z.uuid().optional() })).optional(),
    vaults: z
      .array(
        z.strictObject({
          name: z
            .string()
            .regex(
              /^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/,
              'a vault name is 3-24 letters, digits and dashes',
            ),
          roleAssignments: z
            .array(z.strictObject({ principal: z.string().min(1), role: z.enum(KEY_VAULT_ROLES) }))
            .optional(),
          secrets: z
            .array(
              z.strictObject({
                name: z
                  .string()
                  .regex(/^[0-9a-zA-Z-]{1,127}$/, 'a secret name is 1-127 letters, digits and dashes'),
                value: z.string(),
                contentType: z.string().optional(),
                enabled: z.boolean().optional(),
                nbf: isoOrUnix.optional(),
                exp: isoOrUnix.optional(),
                tags: z.record(z.string(), z.string()).optional(),
              }),
            )
            .optional(),
        }),
      )
      .optional(),
    workspaces: z
      .array(
        z.strictObject({
          name,
          workspaceId: z.string().regex(/^\d+$/).optional(),
          accountId: z.uuid().optional(),
          /** Workspace setting maxTokenLifetimeDays; 0 or absent means no maximum. */
          maxTokenLifetimeDays: z.number().int().nonnegative().optional(),
          /** Live PATs one principal may hold (Databricks' per-user quota); defaults to 600. */
          maxTokensPerUser: z.number().int().positive().optional(),
          principals: z
            .array(
              z
                .strictObject({
                  userName: z.string().optional(),
                  applicationId: z.uuid().optional(),
                  displayName: z.string().optional(),
                  admin: z.boolean().optional(),
                  /** false: a deactivated user (left the company); its PATs stop working. */
                  active: z.boolean().optional(),
                })
                .refine((p) => Boolean(p.userName) !== Boolean(p.applicationId), {
                  message:
                    'a workspace principal has exactly one of userName (user) or applicationId (service principal)',
                }),
            )
            .optional(),
          tokens: z
            .array(
              z.strictObject({
                /** userName or applicationId of the owning principal. */
                owner: z.string().min(1),
                value: z
                  .string()
                  .regex(/^dapi[0-9a-f]{32}(-\d+)?$/, 'a PAT looks like dapi followed by 32 hex digits'),
                comment: z.string().optional(),
                expiryTime: isoOrUnix.optional(),
                /** API scopes (e.g. `sql`, `jobs:read`); absent means every API its owner can call. */
                scopes: z.array(z.string().min(1)).optional(),
                autoscopeEnabled: z.boolean().optional(),
              }),
            )
            .optional(),
        }),
      )
      .optional(),
    accounts: z
      .array(
        z.strictObject({
          accountId: z.uuid(),
          /** Application ids of principals allowed to manage this account's service principals. */
          admins: z.array(z.uuid()).optional(),
          servicePrincipals: z
            .array(
              z.strictObject({
                id: z.string().regex(/^\d+$/).optional(),
                applicationId: z.uuid(),
                displayName: z.string().optional(),
                secrets: z
                  .array(
                    z.strictObject({
                      value: z.string().min(1),
                      expireTime: isoOrUnix.optional(),
                      scopes: z.array(z.string().min(1)).optional(),
                    }),
                  )
                  .optional(),
                federationPolicies: z
                  .array(
                    z.strictObject({
                      issuer: z.url(),
                      subject: z.string().min(1),
                      audiences: z.array(z.string()).optional(),
                      policyId: z.string().optional(),
                      description: z.string().optional(),
                      subjectClaim: z.string().optional(),
                      jwksJson: z.string().optional(),
                      jwksUri: z.url().optional(),
                    }),
                  )
                  .optional(),
              }),
            )
            .optional(),
        }),
      )
      .optional(),
  })
  .strict();

export type Seed = z.infer<typeof seedSchema>;

export interface Principal {
  objectId: string;
  appId: string;
  displayName: string;
  kind: 'application' | 'managedIdentity';
}

export interface ManagedIdentity extends Principal {
  name: string;
  /** Graph application permissions, carried as `roles` in its Graph tokens. */
  graphRoles?: Set<string>;
}

export interface PasswordCredential {
  keyId: string;
  displayName: string | null;
  hint: string;
  secretHash: string;
  startDateTime: string;
  endDateTime: string;
}

export interface FederatedCredential {
  issuer: string;
  subject: string;
  audiences: string[];
}

export interface AppRegistration {
  /** Application object id (Graph `id`). */
  objectId: string;
  appId: string;
  displayName: string;
  /** The app's service principal: the identity its tokens carry as `oid`. */
  servicePrincipal: Principal;
  owners: Set<string>;
  graphRoles: Set<string>;
  passwordCredentials: PasswordCredential[];
  federatedCredentials: FederatedCredential[];
  tags: string[];
  signInAudience: (typeof SIGN_IN_AUDIENCES)[number];
}

export interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
  tags: Record<string, string>;
  /** Which expiry events this version already emitted. */
  emitted: { nearExpiry: boolean; expired: boolean };
}

export interface DeletedSecret {
  versions: SecretVersion[];
  deletedDate: number;
  scheduledPurgeDate: number;
}

export interface Vault {
  name: string;
  url: string;
  /** principal object id → roles */
  roles: Map<string, Set<KeyVaultRole>>;
  secrets: NameOrderedMap<SecretVersion[]>;
  deleted: NameOrderedMap<DeletedSecret>;
}

export interface WorkspacePrincipal {
  id: string;
  userName?: string;
  applicationId?: string;
  displayName: string;
  admin: boolean;
  active?: boolean;
}

export interface WorkspaceToken {
  /** Like Databricks, the SHA-256 (hex) of the token value. */
  tokenId: string;
  valueHash: string;
  ownerId: string;
  creationTime: number;
  /** Epoch ms; -1 for no expiry. */
  expiryTime: number;
  comment: string;
  /** API scopes; undefined means every API its owner can call. */
  scopes?: string[];
  autoscopeEnabled: boolean;
  /** With autoscope on: the scopes of the APIs the token was used for. */
  inferredScopes: string[];
  /** Epoch ms of the last authenticated use. */
  lastUsedTime?: number;
}

export interface Workspace {
  name: string;
  workspaceId: string;
  url: string;
  accountId?: string;
  maxTokenLifetimeSeconds?: number;
  maxTokensPerUser?: number;
  principals: WorkspacePrincipal[];
  tokens: WorkspaceToken[];
}

export interface SpSecret {
  id: string;
  secretHash: string;
  createTime: string;
  updateTime: string;
  expireTime: string;
  status: 'ACTIVE' | 'EXPIRED';
  /** OAuth scopes the secret's tokens may carry; undefined means all APIs. */
  scopes?: string[];
}

export interface AccountServicePrincipal {
  id: string;
  applicationId: string;
  displayName: string;
  secrets: SpSecret[];
  federationPolicies: FederationPolicy[];
}

/** A service principal federation policy, as the account API returns it. */
export interface FederationPolicy {
  policy_id: string;
  uid: string;
  name: string;
  description: string;
  create_time: string;
  update_time: string;
  oidc_policy: {
    issuer: string;
    audiences: string[];
    subject: string;
    subject_claim: string;
    jwks_json?: string;
    jwks_uri?: string;
  };
}

export interface Account {
  accountId: string;
  admins: Set<string>;
  servicePrincipals: AccountServicePrincipal[];
}

export interface MailMessage {
  from: string;
  subject: string;
  contentType: string;
  content: string;
  to: string[];
  at: string;
}

export interface State {
  tenantId: string;
  managedIdentities: ManagedIdentity[];
  apps: AppRegistration[];
  users: { id: string; userPrincipalName: string }[];
  vaults: Map<string, Vault>;
  workspaces: Map<string, Workspace>;
  accounts: Map<string, Account>;
  outbox: MailMessage[];
}

export const DEFAULT_TENANT_ID = '72f988bf-0000-4000-8000-00000000a2ee';

export function createState(tenantId = DEFAULT_TENANT_ID): State {
  return {
    tenantId,
    managedIdentities: [],
    apps: [],
    users: [],
    vaults: new Map(),
    workspaces: new Map(),
    accounts: new Map(),
    outbox: [],
  };
}

export const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

/** Unix seconds from an ISO string or unix seconds. */
export const toUnix = (value: string | number): number =>
  typeof value === 'number' ? value : Math.floor(Date.parse(value) / 1000);

export const newId = (): string => randomUUID();
export const newNumericId = (): string => String(BigInt('0x' + randomBytes(6).toString('hex')));
export const newHexToken = (bytes: number): string => randomBytes(bytes).toString('hex');

/** Every principal that can hold a token: managed identities and the apps' service principals. */
export function allPrincipals(state: State): Principal[] {
  return [...state.managedIdentities, ...state.apps.map((a) => a.servicePrincipal)];
}

/** Resolves a seed reference (object id, app id, or managed identity name) to a principal. */
export function resolvePrincipal(state: State, ref: string): Principal | undefined {
  return (
    state.managedIdentities.find((m) => m.name === ref) ??
    allPrincipals(state).find((p) => p.objectId === ref || p.appId === ref) ??
    state.apps.find((a) => a.objectId === ref)?.servicePrincipal
  );
}
