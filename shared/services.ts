import type { TokenCredential } from '@azure/core-auth';
import type { Settings } from './config';
import { createServiceCredential } from './clients/credential';
import { DatabricksClient } from './clients/databricks';
import { createGraphApi } from './clients/graph';
import { Vaults } from './clients/keyvault';
import { BlobLeaseLocks, createBlobServiceClient } from './clients/lock';
import { BlobNotices } from './clients/notices';
import { STORAGE } from './constants';
import { BlobIssuance, type Issuance } from './issuance';
import { isAllowedOrigin } from './hosts';
import { RotationEngine, type EngineOptions } from './rotation/engine';
import { ROTATORS } from './rotators';
import type { RotatorDeps } from './rotators/types';

export interface Services {
  settings: Settings;
  credential: TokenCredential;
  vaults: Vaults;
  deps: RotatorDeps;
  /** The issuance record (shared/issuance.ts) the engine consults. */
  issuance: Issuance;
  engine: RotationEngine;
}

/**
 * Wires the clients and the engine from the settings. Called once per process, on first use; the
 * SDK clients inside are created lazily, so this costs nothing at cold start.
 */
export function createServices(
  settings: Settings,
  overrides: {
    credential?: TokenCredential;
    engine?: Partial<EngineOptions>;
    databricks?: Partial<ConstructorParameters<typeof DatabricksClient>[0]>;
  } = {},
): Services {
  const credential = overrides.credential ?? createServiceCredential(settings);
  // The account host comes from settings, not from tags, so it is trusted like the allowlist.
  const allowed = [...settings.DATABRICKS_ALLOWED_HOSTS, new URL(settings.DATABRICKS_ACCOUNTS_HOST).host];
  const deps: RotatorDeps = {
    settings,
    credential,
    databricks: new DatabricksClient({
      isAllowedOrigin: (origin) => isAllowedOrigin(origin, allowed),
      ...overrides.databricks,
    }),
    graph: createGraphApi(credential, settings.GRAPH_BASE_URL),
  };
  const vaults = new Vaults(settings.KEY_VAULT_URIS, credential);
  const blobs = createBlobServiceClient(settings, credential);
  const issuance = new BlobIssuance(blobs.getContainerClient(STORAGE.issuanceContainer));
  const engine = new RotationEngine({
    settings,
    rotators: ROTATORS,
    vaults,
    locks: BlobLeaseLocks.fromSettings(settings, credential),
    issuance,
    notices: new BlobNotices(blobs.getContainerClient(STORAGE.lockContainer)),
    deps,
    ...overrides.engine,
  });
  return { settings, credential, vaults, deps, issuance, engine };
}
