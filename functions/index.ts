/**
 * The entry the Functions host loads (package.json `main` → dist/main.js, bundled from here): the
 * registrations only, which are all the host needs to index the app. Each handler, with the SDKs and
 * the engine behind it, is loaded on the first invocation (dist/handlers.js), so a cold start pays
 * for them only once there is work.
 */
import { app, type InvocationContext } from '@azure/functions';
import { STORAGE } from '../shared/constants';
import {
  CONNECTION,
  notificationPoisonQueue,
  notificationQueue,
  rotationPoisonQueue,
  scanPoisonQueue,
  scanQueue,
} from './common';

type Handlers = typeof import('./handlers');
type Handler = (trigger: unknown, context: InvocationContext) => Promise<void>;
let handlers: Promise<Handlers> | undefined;

/** The named handler, loaded once; a failed load is tried again on the next invocation. */
function lazy(name: keyof Handlers): Handler {
  return async (trigger, context) => {
    handlers ??= import('./handlers').catch((e: unknown) => {
      handlers = undefined;
      throw e;
    });
    const handler = (await handlers)[name] as Handler;
    return handler(trigger, context);
  };
}

/** Timer: fans the scan out, one `scan-requests` message per configured vault. */
app.timer('scanVaults', {
  schedule: '%SCAN_SCHEDULE%',
  // A tick whose messages could not be written (storage down) is retried soon, not at the next tick.
  retry: {
    strategy: 'exponentialBackoff',
    maxRetryCount: 3,
    minimumInterval: { seconds: 30 },
    maximumInterval: { minutes: 5 },
  },
  extraOutputs: [scanQueue],
  handler: lazy('scanVaults'),
});

/** Queue: scans one vault, enqueuing its rotations and notices page by page. */
app.storageQueue('scanVault', {
  queueName: STORAGE.scanQueue,
  connection: CONNECTION,
  extraOutputs: [scanPoisonQueue],
  handler: lazy('scanVault'),
});

/** Event Grid: a Key Vault SecretNearExpiry (or SecretExpired) event rotates that secret. */
app.eventGrid('onKeyVaultEvent', { extraOutputs: [notificationQueue], handler: lazy('onKeyVaultEvent') });

/** Queue: one rotation, revoke-previous or reconcile of one secret. */
app.storageQueue('rotateSecret', {
  queueName: STORAGE.rotationQueue,
  connection: CONNECTION,
  extraOutputs: [notificationQueue, rotationPoisonQueue],
  handler: lazy('rotateSecret'),
});

/** Queue: one notification to one channel. */
app.storageQueue('sendNotifications', {
  queueName: STORAGE.notificationQueue,
  connection: CONNECTION,
  extraOutputs: [notificationPoisonQueue],
  handler: lazy('sendNotifications'),
});
