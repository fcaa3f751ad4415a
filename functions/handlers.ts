/**
 * The functions' handlers, loaded at the first invocation (see index.ts): each lives in its own file.
 * The build bundles this module apart from the registrations (dist/handlers.js).
 */
export { onKeyVaultEvent } from './onKeyVaultEvent';
export { rotateSecret } from './rotateSecret';
export { scanVault } from './scanVault';
export { scanVaults } from './scanVaults';
export { sendNotifications } from './sendNotifications';
