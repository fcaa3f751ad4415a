import type { Emulator } from '../server';
import { Router } from '../http';
import type { Vault } from '../state';

/** One vault's Key Vault secrets API (its own origin). */
export function keyVaultRouter(_em: Emulator, _vault: Vault): Router {
  return new Router();
}
