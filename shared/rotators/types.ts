import type { Settings } from '../config';
import type { DatabricksClient } from '../clients/databricks';
import type { GraphApi } from '../clients/graph';
import type { TokenCredential } from '@azure/core-auth';

/** A problem with a secret's tags: reported, never thrown away, never an exception that stops a scan. */
export interface Finding {
  tag: string;
  reason: string;
}

/** A provider credential as the rotator sees it: never the value, only its identity. */
export interface CredentialInfo {
  id: string;
  createdAt: Date;
  expiresAt?: Date;
  /** The `kv-rotator:{vault}/{secret}:{rotationId}` marker, where the provider keeps a comment or name. */
  marker?: string;
  /** The first characters of the value, where the provider shows them (Entra's `hint`). */
  hint?: string;
}

/**
 * What a Databricks token may call: `scopes` undefined means every API its owner can call. A
 * successor always gets exactly its predecessor's scopes and autoscope setting, never wider.
 */
export interface TokenScopes {
  scopes?: string[];
  autoscope: boolean;
}

export interface NewCredential {
  id: string;
  value: string;
  expiresAt: Date;
  /** The scopes it was created with, for kinds whose credentials carry scopes. */
  scopes?: TokenScopes;
}

/** What every rotator gets: the service's clients, created once per process. */
export interface RotatorDeps {
  settings: Settings;
  /** The service's own identity (managed identity in Azure, the local Entra locally). */
  credential: TokenCredential;
  databricks: DatabricksClient;
  graph: GraphApi;
}

/** Where a rotation happens: the secret that holds the credential and the value it holds now. */
export interface SecretContext {
  vaultName: string;
  secretName: string;
  /** The value of the current version: some providers authenticate with it (a PAT creates its successor). */
  currentValue: string;
  /** The provider ids the vault references (state tags): never revoked to make room at a limit. */
  credentialId?: string;
  previousCredentialId?: string;
  /** The current version's tags, for kind-specific options that are not part of the target. */
  tags?: Readonly<Record<string, string>>;
  /** Whether the issuance record proves this service issued (or adopted) the credential for this secret. */
  issued?: (credentialId: string) => boolean;
  /** Called after a credential was revoked to make room at a provider limit (closes its record). */
  freed?: (credentialId: string) => Promise<void>;
}

/**
 * One kind of credential. Adding a kind is one new file exporting one of these, listed in
 * `rotators/index.ts`; the engine knows nothing else about it.
 */
export interface Rotator<Target = unknown> {
  readonly kind: string;
  /** Validates the kind's own tags into a target; tags are untrusted input, so problems are findings. */
  parseTarget(
    tags: Readonly<Record<string, string>>,
    settings: Settings,
  ): { target: Target } | { findings: Finding[] };
  /** Tag the Key Vault samples' `ProviderAddress` stands for, for this kind. */
  readonly providerAddressTag: string;
  /** A short, secret-free description of the target for logs and notifications. */
  describe(target: Target): string;
  /**
   * The key a `ROTATION_BINDINGS` entry must name to let a vault rotate this target (design section 4),
   * or undefined when the kind needs no binding (a PAT can only mint a successor for its own owner).
   */
  bindingKey(target: Target): string | undefined;
  /** A binding kept on the target itself, which only its owners can write (e.g. an Entra app tag). */
  hasTargetBinding?(target: Target, ctx: SecretContext, deps: RotatorDeps): Promise<boolean>;
  create(
    target: Target,
    ctx: SecretContext,
    /** The lifetime asked for, both as seconds (Databricks) and as an end date (Graph). */
    request: { lifetimeSeconds: number; expiresAt: Date; marker: string },
    deps: RotatorDeps,
  ): Promise<NewCredential>;
  /**
   * Resolves if the credential works; throws (a TransientError while it may still propagate) if not.
   * Given the `created` credential, it also proves the value reaches what its scopes allow.
   */
  verify(target: Target, value: string, deps: RotatorDeps, created?: NewCredential): Promise<void>;
  /** Revokes a credential; an unknown id counts as revoked (idempotent). */
  revoke(target: Target, credentialId: string, ctx: SecretContext, deps: RotatorDeps): Promise<void>;
  /** The credentials that exist for the target now, for reconciliation. */
  list(target: Target, ctx: SecretContext, deps: RotatorDeps): Promise<CredentialInfo[]>;
  /**
   * Whether a listed credential carries the marker `create` was given, for a provider that keeps no
   * comment or name and so leaves `CredentialInfo.marker` empty. Without it, the marker is compared.
   */
  carries?(credential: CredentialInfo, marker: string): boolean;
}
