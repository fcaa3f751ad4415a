import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Clock } from '../server';
import type { Faults } from '../faults';
import type { State, Vault } from '../state';

/** Key Vault emits SecretNearExpiry about 30 days before `exp` of the current version. */
export const NEAR_EXPIRY_MS = 30 * 24 * 3600_000;

export const KEY_VAULT_EVENT_TYPES = [
  'Microsoft.KeyVault.SecretNewVersionCreated',
  'Microsoft.KeyVault.SecretNearExpiry',
  'Microsoft.KeyVault.SecretExpired',
] as const;

export const subscriptionSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  schema: z.enum(['EventGridSchema', 'CloudEventSchemaV1_0']).default('EventGridSchema'),
  /** Event types delivered; absent means all Key Vault secret events. */
  eventTypes: z.array(z.enum(KEY_VAULT_EVENT_TYPES)).optional(),
  /** Only events from these vaults; absent means every vault. */
  vaults: z.array(z.string()).optional(),
  maxAttempts: z.number().int().positive().max(30).default(5),
  /** First retry delay; doubles per attempt (Event Grid backs off exponentially). */
  retryDelayMs: z.number().int().nonnegative().max(60_000).default(250),
});
export type SubscriptionInput = z.input<typeof subscriptionSchema>;
export type Subscription = z.infer<typeof subscriptionSchema> & { id: string };

export interface EventGridEvent {
  id: string;
  topic: string;
  subject: string;
  eventType: string;
  eventTime: string;
  data: {
    Id: string;
    VaultName: string;
    ObjectType: 'Secret';
    ObjectName: string;
    Version: string;
    NBF: number | null;
    EXP: number | null;
  };
  dataVersion: '1';
  metadataVersion: '1';
}

export interface DeliveryRecord {
  subscriptionId: string;
  eventId: string;
  eventType: string;
  /** 1-based; the subscriber saw `aeg-delivery-count: attempt - 1`. */
  attempt: number;
  status: number | 'error';
  at: string;
}

export interface DeadLetter {
  subscriptionId: string;
  event: EventGridEvent;
  /** Event Grid's dead-letter reasons: retries used up, or a status it never retries. */
  deadLetterReason: 'MaxDeliveryAttemptsExceeded' | 'DeliveryFailed';
  deliveryAttempts: number;
  lastStatus: number | 'error';
}

/** Webhook answers Event Grid does not retry (delivery-and-retry docs); the event is dead-lettered at once. */
const NOT_RETRIED = new Set([400, 401, 403, 413]);
/** Event Grid counts only these as delivered. */
const DELIVERED = new Set([200, 201, 202, 203, 204]);
/** Event Grid waits 30 s for an answer; backs off to at most hourly retries. */
const DELIVERY = { timeoutMs: 30_000, maxRetryDelayMs: 3_600_000 } as const;

/** The Event Grid system topic of every emulated vault, with push delivery and retry. */
export class KeyVaultEventGrid {
  readonly published: EventGridEvent[] = [];
  readonly deliveries: DeliveryRecord[] = [];
  readonly deadLettered: DeadLetter[] = [];
  private subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Aborted by reset() and close(), so pending retries neither outlive them nor record into new state. */
  private abort = new AbortController();

  constructor(
    private readonly state: () => State,
    private readonly clock: Clock,
    private readonly armSubscription = '00000000-0000-0000-0000-000000000000',
    private readonly resourceGroup = 'local-rg',
    /** Delivery faults (service `eventgrid-delivery`, route `delivery`): as if the network failed. */
    private readonly faults?: Faults,
  ) {}

  subscribe(input: SubscriptionInput): string {
    const sub = { ...subscriptionSchema.parse(input), id: randomUUID() };
    this.subscriptions.push(sub);
    return sub.id;
  }

  /** Removes a subscription; deliveries already under way finish. Returns whether it existed. */
  unsubscribe(id: string): boolean {
    const before = this.subscriptions.length;
    this.subscriptions = this.subscriptions.filter((s) => s.id !== id);
    return this.subscriptions.length < before;
  }

  listSubscriptions(): Subscription[] {
    return [...this.subscriptions];
  }

  reset(): void {
    this.abort.abort();
    this.abort = new AbortController();
    this.subscriptions = [];
    this.published.length = 0;
    this.deliveries.length = 0;
    this.deadLettered.length = 0;
  }

  emit(
    vault: Vault,
    eventType: (typeof KEY_VAULT_EVENT_TYPES)[number],
    secretName: string,
    version: string,
  ): void {
    if (this.abort.signal.aborted) return;
    const secret = this.state()
      .vaults.get(vault.name)
      ?.secrets.get(secretName)
      ?.find((v) => v.version === version);
    const event: EventGridEvent = {
      id: randomUUID(),
      topic: `/subscriptions/${this.armSubscription}/resourceGroups/${this.resourceGroup}/providers/Microsoft.KeyVault/vaults/${vault.name}`,
      subject: secretName,
      eventType,
      eventTime: new Date(this.clock.now()).toISOString(),
      data: {
        Id: `${vault.url}/secrets/${secretName}/${version}`,
        VaultName: vault.name,
        ObjectType: 'Secret',
        ObjectName: secretName,
        Version: version,
        NBF: secret?.nbf ?? null,
        EXP: secret?.exp ?? null,
      },
      dataVersion: '1',
      metadataVersion: '1',
    };
    this.published.push(event);
    for (const sub of this.subscriptions) {
      if (sub.eventTypes && !sub.eventTypes.includes(eventType)) continue;
      if (sub.vaults && !sub.vaults.includes(vault.name)) continue;
      const delivery = this.deliver(sub, event, this.abort.signal).finally(() =>
        this.inFlight.delete(delivery),
      );
      this.inFlight.add(delivery);
    }
  }

  /** Emits SecretNearExpiry / SecretExpired for current versions that crossed a threshold, once each. */
  checkExpiry(): void {
    const now = this.clock.now();
    for (const vault of this.state().vaults.values()) {
      for (const [name, versions] of vault.secrets) {
        const current = versions[versions.length - 1];
        if (!current?.exp || !current.enabled) continue;
        const expMs = current.exp * 1000;
        if (now >= expMs && !current.emitted.expired) {
          current.emitted.expired = true;
          current.emitted.nearExpiry = true;
          this.emit(vault, 'Microsoft.KeyVault.SecretExpired', name, current.version);
        } else if (now >= expMs - NEAR_EXPIRY_MS && now < expMs && !current.emitted.nearExpiry) {
          current.emitted.nearExpiry = true;
          this.emit(vault, 'Microsoft.KeyVault.SecretNearExpiry', name, current.version);
        }
      }
    }
  }

  /** Resolves when every delivery started so far has succeeded, been dead-lettered or been cancelled. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Stops delivering: pending retries are cancelled, new events are dropped. */
  close(): void {
    this.abort.abort();
  }

  private async deliver(sub: Subscription, event: EventGridEvent, cancel: AbortSignal): Promise<void> {
    const cloud = sub.schema === 'CloudEventSchemaV1_0';
    // Without output batching Event Grid posts an array of one event; CloudEvents go one per request.
    const body = cloud ? JSON.stringify(toCloudEvent(event)) : JSON.stringify([event]);
    const headers = {
      'content-type': cloud
        ? 'application/cloudevents+json; charset=utf-8'
        : 'application/json; charset=utf-8',
      'aeg-event-type': 'Notification',
      'aeg-subscription-name': sub.id.toUpperCase(),
      'aeg-data-version': event.dataVersion,
      'aeg-metadata-version': event.metadataVersion,
    };
    let lastStatus: number | 'error';
    let reason: DeadLetter['deadLetterReason'] = 'MaxDeliveryAttemptsExceeded';
    let attempt = 1;
    for (; ; attempt++) {
      const fault = this.faults?.take({
        service: 'eventgrid-delivery',
        method: 'POST',
        route: 'delivery',
        path: new URL(sub.url).pathname,
      });
      try {
        if (fault?.latencyMs) await sleep(fault.latencyMs, undefined, { signal: cancel });
        if (fault?.drop) throw new Error('delivery fault: connection dropped');
        if (fault?.status !== undefined) {
          lastStatus = fault.status;
        } else {
          const res = await fetch(sub.url, {
            method: 'POST',
            headers: { ...headers, 'aeg-delivery-count': String(attempt - 1) },
            body,
            signal: AbortSignal.any([cancel, AbortSignal.timeout(DELIVERY.timeoutMs)]),
          });
          await res.arrayBuffer();
          // Delivered, but the acknowledgement was lost: Event Grid delivers the event again.
          lastStatus = fault?.lostAnswer ? 'error' : res.status;
        }
      } catch {
        lastStatus = 'error';
      }
      if (cancel.aborted) return;
      this.deliveries.push({
        subscriptionId: sub.id,
        eventId: event.id,
        eventType: event.eventType,
        attempt,
        status: lastStatus,
        at: new Date().toISOString(),
      });
      if (typeof lastStatus === 'number' && DELIVERED.has(lastStatus)) return;
      if (typeof lastStatus === 'number' && NOT_RETRIED.has(lastStatus)) {
        reason = 'DeliveryFailed';
        break;
      }
      if (attempt >= sub.maxAttempts) break;
      const delay = Math.min(sub.retryDelayMs * 2 ** (attempt - 1), DELIVERY.maxRetryDelayMs);
      try {
        await sleep(delay, undefined, { signal: cancel });
      } catch {
        return; // reset() or close()
      }
    }
    this.deadLettered.push({
      subscriptionId: sub.id,
      event,
      deadLetterReason: reason,
      deliveryAttempts: attempt,
      lastStatus,
    });
  }
}

/** The CloudEvents 1.0 form of a Key Vault event, as Event Grid delivers it on request. */
export function toCloudEvent(event: EventGridEvent): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: event.id,
    source: event.topic,
    subject: event.subject,
    type: event.eventType,
    time: event.eventTime,
    datacontenttype: 'application/json',
    data: event.data,
  };
}
