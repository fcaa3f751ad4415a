/**
 * The entry the Functions host loads (package.json `main` → dist/main.js, bundled from here).
 * Each function lives in its own file and registers itself when imported.
 */
import './scanVaults';
import './scanVault';
import './onKeyVaultEvent';
import './rotateSecret';
import './sendNotifications';
