import { z } from 'zod';
import type { LocalAzure } from './index';
import { faultSchema } from './faults';
import { HttpError, json, readJson, Router, type EmulatorRequest } from './http';
import { describe } from './seed';
import { subscriptionSchema } from './services/eventgrid';
import { seedSchema } from './state';

const badRequest = (message: string) => new HttpError(400, { error: { code: 'BadRequest', message } });

function parse<T extends z.ZodType>(schema: T, req: EmulatorRequest, what: string): z.infer<T> {
  const result = schema.safeParse(readJson(req, badRequest));
  if (!result.success) throw badRequest(`Invalid ${what}:\n${z.prettifyError(result.error)}`);
  return result.data;
}

const advanceSchema = z
  .strictObject({
    seconds: z.number().nonnegative().optional(),
    hours: z.number().nonnegative().optional(),
    days: z.number().nonnegative().optional(),
  })
  .refine((a) => a.seconds !== undefined || a.hours !== undefined || a.days !== undefined, {
    message: 'give seconds, hours or days',
  });

/**
 * The control API (`/control/*` on the main origin): seed, clock, faults, request counts, Event Grid
 * subscriptions and deliveries, custom topic events, the mail outbox and the webhook sink. Not counted,
 * never faulted.
 */
export function controlRoutes(azure: LocalAzure, router: Router): void {
  router
    .add('POST', '/control/seed', async (req) => json(200, await azure.seed(parse(seedSchema, req, 'seed'))))
    .add('GET', '/control/state', () => json(200, describe(azure)))
    .add('POST', '/control/reset', async () => {
      await azure.reset();
      return json(200, describe(azure));
    })
    .add('GET', '/control/clock', () => json(200, { now: new Date(azure.clock.now()).toISOString() }))
    .add('POST', '/control/clock/advance', async (req) => {
      const a = parse(advanceSchema, req, 'clock advance');
      azure.clock.advance(((a.days ?? 0) * 86400 + (a.hours ?? 0) * 3600 + (a.seconds ?? 0)) * 1000);
      return json(200, { now: new Date(azure.clock.now()).toISOString() });
    })
    .add('POST', '/control/faults', (req) =>
      json(201, { id: azure.servers.faults.add(parse(faultSchema, req, 'fault')) }),
    )
    .add('GET', '/control/faults', () => json(200, { faults: azure.servers.faults.list() }))
    .add('DELETE', '/control/faults', () => {
      azure.servers.faults.clear();
      return { status: 204 };
    })
    .add('GET', '/control/requests', () => json(200, { counts: azure.servers.counts.snapshot() }))
    .add('DELETE', '/control/requests', () => {
      azure.servers.counts.reset();
      return { status: 204 };
    })
    .add('POST', '/control/eventgrid/subscriptions', (req) =>
      json(201, { id: azure.events.subscribe(parse(subscriptionSchema, req, 'event subscription')) }),
    )
    .add('GET', '/control/eventgrid/subscriptions', () =>
      json(200, { subscriptions: azure.events.listSubscriptions() }),
    )
    .add('DELETE', '/control/eventgrid/subscriptions/:id', (req) => {
      if (azure.events.unsubscribe(req.params.id as string)) return { status: 204 };
      throw new HttpError(404, {
        error: { code: 'NotFound', message: `no event subscription ${req.params.id}` },
      });
    })
    .add('GET', '/control/eventgrid/events', () =>
      json(200, {
        published: azure.events.published,
        deliveries: azure.events.deliveries,
        deadLettered: azure.events.deadLettered,
      }),
    )
    .add('GET', '/control/outbox', () => json(200, { messages: azure.state.outbox }))
    .add('GET', '/control/topics/:name/events', (req) => {
      const name = req.params.name as string;
      if (!azure.topics.has(name))
        throw new HttpError(404, { error: { code: 'NotFound', message: `no topic named ${name}` } });
      return json(200, { events: azure.topics.events(name) });
    })
    .add('GET', '/control/sink', (req) => {
      const channel = req.query.get('channel');
      return json(200, { deliveries: channel ? azure.sink.forChannel(channel) : azure.sink.deliveries });
    });
}
