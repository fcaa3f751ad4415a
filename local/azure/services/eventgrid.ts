import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Clock } from '../server';
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
type Subscription = z.infer<typeof subscriptionSchema> & { id: string };

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
  attempt: number;
  status: number | 'error';
  at: string;
}

/** The Event Grid system topic of every emulated vault, with push delivery and retry. */
export class KeyVaultEventGrid {
  readonly published: EventGridEvent[] = [];
  readonly deliveries: DeliveryRecord[] = [];
  readonly deadLettered: { subscriptionId: string; event: EventGridEvent; lastStatus: number | 'error' }[] =
    [];
  private subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly state: () => State,
    private readonly clock: Clock,
    private readonly armSubscription = '00000000-0000-0000-0000-000000000000',
    private readonly resourceGroup = 'local-rg',
  ) {}

  subscribe(input: SubscriptionInput): string {
    const sub = { ...subscriptionSchema.parse(input), id: randomUUID() };
    this.subscriptions.push(sub);
    return sub.id;
  }

  listSubscriptions(): Subscription[] {
    return [...this.subscriptions];
  }

  reset(): void {
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
      const delivery = this.deliver(sub, event).finally(() => this.inFlight.delete(delivery));
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

  /** Resolves when every delivery started so far has succeeded or been dead-lettered. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  close(): void {
    this.closed = true;
  }

  private async deliver(sub: Subscription, event: EventGridEvent): Promise<void> {
    const cloud = sub.schema === 'CloudEventSchemaV1_0';
    const body = cloud ? JSON.stringify(toCloudEvent(event)) : JSON.stringify([event]);
    const headers = {
      'content-type': cloud
        ? 'application/cloudevents+json; charset=utf-8'
        : 'application/json; charset=utf-8',
      'aeg-event-type': 'Notification',
      'aeg-subscription-name': sub.id.toUpperCase(),
    };
    let lastStatus: number | 'error' = 'error';
    for (let attempt = 1; attempt <= sub.maxAttempts && !this.closed; attempt++) {
      try {
        const res = await fetch(sub.url, {
          method: 'POST',
          headers: { ...headers, 'aeg-delivery-count': String(attempt - 1) },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        await res.arrayBuffer();
        lastStatus = res.status;
      } catch {
        lastStatus = 'error';
      }
      this.deliveries.push({
        subscriptionId: sub.id,
        eventId: event.id,
        eventType: event.eventType,
        attempt,
        status: lastStatus,
        at: new Date().toISOString(),
      });
      if (typeof lastStatus === 'number' && lastStatus >= 200 && lastStatus < 300) return;
      if (attempt < sub.maxAttempts) await sleep(sub.retryDelayMs * 2 ** (attempt - 1));
    }
    if (!this.closed) this.deadLettered.push({ subscriptionId: sub.id, event, lastStatus });
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
