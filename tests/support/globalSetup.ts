import path from 'node:path';
import { startAzurite, type AzuriteHandle } from '../../local/azurite';

declare global {
  var __AZURITE__: AzuriteHandle | undefined;
}

/** One Azurite for the whole run; tests isolate themselves with unique queue and container names. */
export default async function globalSetup(): Promise<void> {
  const azurite = await startAzurite(path.resolve(__dirname, '..', '..', '.local', 'azurite-test'), {
    fresh: true,
  });
  globalThis.__AZURITE__ = azurite;
  process.env.AZURITE_CONNECTION_STRING = azurite.connectionString;
}
