import { z } from 'zod';

/** Services as request counts and faults name them (`msi` is the managed-identity endpoint). */
export const FAULT_SERVICES = [
  'entra',
  'msi',
  'graph',
  'sink',
  'keyvault',
  'databricks',
  'accounts',
  'eventgrid',
  /** Key Vault's Event Grid pushing an event to a subscriber (the function app's webhook). */
  'eventgrid-delivery',
  /** Azurite behind the Storage fault proxy (local/azure/storage-proxy.ts). */
  'blob',
  'queue',
] as const;

/** A fault rule: which requests it matches and what happens to them instead of (or before) the handler. */
export const faultSchema = z
  .strictObject({
    /** Service label, as request counts show it. */
    service: z.enum(FAULT_SERVICES).optional(),
    /** Vault or workspace name, for services with one origin per instance. */
    instance: z.string().optional(),
    method: z.string().toUpperCase().optional(),
    /** Route template as shown in request counts (e.g. `/secrets/:name/?`), or a regular expression on the path. */
    route: z.string().optional(),
    pathPattern: z.string().optional(),
    status: z.number().int().min(100).max(599).optional(),
    body: z.unknown().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    retryAfterSeconds: z.number().int().nonnegative().optional(),
    latencyMs: z.number().int().nonnegative().max(120_000).optional(),
    /** Destroy the connection without a response. */
    drop: z.boolean().optional(),
    /**
     * Done, but the answer was lost: the handler runs (the change is made), then the connection is
     * destroyed before the response is sent.
     */
    lostAnswer: z.boolean().optional(),
    /** The handler runs, then the answer waits this long (a caller may time out, or die, meanwhile). */
    answerDelayMs: z.number().int().nonnegative().max(120_000).optional(),
    /** Apply to the next N matching requests, then disappear; absent means until cleared. */
    times: z.number().int().positive().optional(),
    /**
     * Apply to one in every N matching requests (the Nth, the 2Nth, …), the others pass on to the
     * next rule: a burst spread over the traffic instead of served to its first requests.
     */
    every: z.number().int().positive().optional(),
  })
  .refine(
    (f) =>
      f.status !== undefined ||
      f.latencyMs !== undefined ||
      f.drop ||
      f.lostAnswer ||
      f.answerDelayMs !== undefined,
    { message: 'a fault needs at least one of status, latencyMs, drop, lostAnswer or answerDelayMs' },
  )
  .refine((f) => !(f.status !== undefined && (f.lostAnswer || f.answerDelayMs !== undefined)), {
    message: 'status answers instead of the handler; lostAnswer and answerDelayMs act after it runs',
  })
  .refine((f) => f.pathPattern === undefined || isValidRegex(f.pathPattern), {
    message: 'pathPattern is not a valid regular expression',
    path: ['pathPattern'],
  });

export type FaultRule = z.infer<typeof faultSchema>;

function isValidRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

export interface RequestKey {
  service: string;
  instance?: string;
  method: string;
  route: string;
  path: string;
}

interface ActiveFault {
  id: number;
  rule: FaultRule;
  regex?: RegExp;
  remaining: number;
  /** Matching requests seen, for `every`. */
  seen: number;
}

/** Fault rules, applied in the order they were added; the first match wins. */
export class Faults {
  private rules: ActiveFault[] = [];
  private nextId = 1;

  add(rule: FaultRule): number {
    const id = this.nextId++;
    this.rules.push({
      id,
      rule,
      regex: rule.pathPattern ? new RegExp(rule.pathPattern) : undefined,
      remaining: rule.times ?? Infinity,
      seen: 0,
    });
    return id;
  }

  clear(): void {
    this.rules = [];
  }

  list(): (FaultRule & { id: number; remaining: number | null })[] {
    return this.rules.map((f) => ({
      ...f.rule,
      id: f.id,
      remaining: Number.isFinite(f.remaining) ? f.remaining : null,
    }));
  }

  /** Returns the rule that applies to this request and consumes one use of it. */
  take(key: RequestKey): FaultRule | undefined {
    const hit = this.rules.find(
      (f) =>
        (f.rule.service === undefined || f.rule.service === key.service) &&
        (f.rule.instance === undefined || f.rule.instance === key.instance) &&
        (f.rule.method === undefined || f.rule.method === key.method) &&
        (f.rule.route === undefined || f.rule.route === key.route) &&
        (f.regex === undefined || f.regex.test(key.path)) &&
        (f.rule.every === undefined || ++f.seen % f.rule.every === 0),
    );
    if (!hit) return undefined;
    hit.remaining -= 1;
    if (hit.remaining <= 0) this.rules = this.rules.filter((f) => f !== hit);
    return hit.rule;
  }
}

const add = (map: Map<string, number>, label: string, n: number) => map.set(label, (map.get(label) ?? 0) + n);
const sorted = (map: Map<string, number>): Record<string, number> =>
  Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)));

/** Request counts per `service[/instance] METHOD route`. */
export class RequestCounts {
  private counts = new Map<string, number>();
  /** Injected latency actually held per label (ms): a timer of 5 ms fires after 5 ms or later. */
  private held = new Map<string, number>();
  /** Requests answered 429 per label (counted in `counts` too: a refused request was still sent). */
  private throttled = new Map<string, number>();

  static label(key: Omit<RequestKey, 'path'>): string {
    const service = key.instance ? `${key.service}/${key.instance}` : key.service;
    return `${service} ${key.method} ${key.route}`;
  }

  record(key: RequestKey): void {
    add(this.counts, RequestCounts.label(key), 1);
  }

  recordHeld(key: RequestKey, ms: number): void {
    add(this.held, RequestCounts.label(key), ms);
  }

  recordThrottled(key: RequestKey): void {
    add(this.throttled, RequestCounts.label(key), 1);
  }

  snapshot(): Record<string, number> {
    return sorted(this.counts);
  }

  /** Injected latency held per label (ms), as `snapshot` counts requests. */
  heldSnapshot(): Record<string, number> {
    return sorted(this.held);
  }

  /** Requests answered 429 per label. */
  throttledSnapshot(): Record<string, number> {
    return sorted(this.throttled);
  }

  /** Sum of counts whose label starts with the prefix, e.g. `keyvault/vault1 GET`. */
  total(prefix = ''): number {
    let n = 0;
    for (const [label, count] of this.counts) if (label.startsWith(prefix)) n += count;
    return n;
  }

  reset(): void {
    this.counts.clear();
    this.held.clear();
    this.throttled.clear();
  }
}
