import { randomUUID } from 'node:crypto';
import { bearerToken, HttpError, json, Router, type EmulatorRequest } from '../http';
import { JwtError } from '../jwt';
import type { Emulator } from '../server';
import { RESOURCES } from '../tokens';

/**
 * Event Grid custom topics (the rotator's notification topic), publish side only, Event Grid schema.
 * Azure gives each topic its own host (`https://{topic}.{region}-1.eventgrid.azure.net/api/events`);
 * EventGridPublisherClient uses the endpoint URL exactly as given and only appends `?api-version=`,
 * so here a topic lives under a path on the main origin: `{main}/topics/{name}/api/events`.
 * Local (key/SAS) auth is disabled, as the rotator's Bicep sets it: only Entra bearer tokens for
 * `https://eventgrid.azure.net` are accepted.
 */

const API_VERSION = '2018-01-01';
const SCHEMA = 'EventGridEvent';
/** Event Grid checks the required properties in this order and names the first one missing. */
const REQUIRED = ['subject', 'id', 'eventType', 'eventTime'] as const;
/** Event Grid's limit per publish request (and per event). */
const MAX_BYTES = 1_048_576;

export interface PublishedEvent {
  id: string;
  topic: string;
  subject: string;
  eventType: string;
  eventTime: string;
  data?: unknown;
  dataVersion: string;
  metadataVersion: string;
}

export interface ReceivedEvent {
  topic: string;
  event: PublishedEvent;
  /** Object id of the principal whose token published it. */
  publisher: string;
  receivedAt: string;
}

/** `M/d/yyyy h:mm:ss tt`, as Event Grid's "Report '…'" suffix prints time. */
function reportTime(ms: number): string {
  const d = new Date(ms);
  const h = d.getUTCHours();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()} ${h % 12 || 12}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${h < 12 ? 'AM' : 'PM'}`;
}

export class CustomTopics {
  private readonly topics = new Map<string, ReceivedEvent[]>();

  constructor(
    private readonly em: Emulator,
    private readonly armSubscription = '00000000-0000-0000-0000-000000000000',
    private readonly resourceGroup = 'local-rg',
  ) {}

  /** Creates a topic (idempotent). Names follow Azure's rule: 3-50 letters, digits and dashes. */
  add(name: string): void {
    if (!/^[A-Za-z0-9-]{3,50}$/.test(name)) {
      throw new Error(
        `Topic name must be between 3 and 50 characters in length (letters, digits, '-'): ${name}`,
      );
    }
    if (!this.topics.has(name)) this.topics.set(name, []);
  }

  has(name: string): boolean {
    return this.topics.has(name);
  }

  /** The endpoint to give EventGridPublisherClient (NOTIFICATION_TOPIC_ENDPOINT). */
  endpoint(name: string): string {
    if (!this.topics.has(name)) throw new Error(`no topic named ${name}`);
    return `${this.em.url}/topics/${name}/api/events`;
  }

  /** Events the topic accepted, oldest first. */
  events(name: string): ReceivedEvent[] {
    const events = this.topics.get(name);
    if (!events) throw new Error(`no topic named ${name}`);
    return [...events];
  }

  /** Removes every topic (LocalAzure.reset). */
  reset(): void {
    this.topics.clear();
  }

  resourceId(name: string): string {
    return `/subscriptions/${this.armSubscription}/resourceGroups/${this.resourceGroup}/providers/Microsoft.EventGrid/topics/${name}`;
  }

  routes(router: Router): void {
    router.add('POST', '/topics/:name/api/events', (req) => this.publish(req));
  }

  private publish(req: EmulatorRequest) {
    const requestId = randomUUID();
    const headers = { 'x-ms-request-id': requestId, 'api-supported-versions': API_VERSION };
    const suffix = ` Report '${requestId}:1:${reportTime(this.em.clock.now())} (UTC)' to our forums for assistance or raise a support ticket.`;
    /** Event Grid's error shape: `{error:{code, message, details:[{code, message}]}}`. */
    const fail = (status: number, code: string, detailCode: string, message: string) =>
      new HttpError(
        status,
        {
          error: {
            code,
            message: message + suffix,
            details: [{ code: detailCode, message: message + suffix }],
          },
        },
        headers,
      );

    const name = req.params.name as string;
    const host = new URL(req.origin).host.toUpperCase();
    const events = this.topics.get(name);
    if (!events) {
      throw fail(
        404,
        'NotFound',
        'ResourceNotFound',
        `No HTTP resource was found that matches the request URI '${req.origin}${req.path}?api-version=${req.query.get('api-version') ?? ''}'.`,
      );
    }

    // Authentication first, as Event Grid does: no body is looked at without a valid caller.
    if (
      req.headers['aeg-sas-key'] ||
      req.headers['aeg-sas-token'] ||
      /^SharedAccessSignature\s/i.test(String(req.headers.authorization ?? ''))
    ) {
      throw fail(
        401,
        'Unauthorized',
        'Unauthorized',
        `The request authorization key is not authorized for ${host}/TOPICS/${name.toUpperCase()}. This is due to the reason: local authentication (access keys and SAS tokens) is disabled for this topic; use a Microsoft Entra token.`,
      );
    }
    const token = bearerToken(req);
    if (!token) {
      throw fail(
        401,
        'Unauthorized',
        'Unauthorized',
        'Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key.',
      );
    }
    let publisher: string;
    try {
      publisher = this.em.tokens.verify(token, [RESOURCES.eventGrid]).principal.objectId;
    } catch (e) {
      if (!(e instanceof JwtError)) throw e;
      throw fail(
        401,
        'Unauthorized',
        'Unauthorized',
        `The access token is not valid for ${host}: ${e.message}.`,
      );
    }

    const version = req.query.get('api-version');
    if (version !== API_VERSION) {
      throw fail(
        400,
        'BadRequest',
        'InvalidApiVersion',
        version
          ? `The api-version '${version}' is invalid. The supported versions are '${API_VERSION}'.`
          : `The api-version query parameter (?api-version=) is required for all requests. The supported versions are '${API_VERSION}'.`,
      );
    }
    if (req.body.length > MAX_BYTES) {
      throw fail(
        413,
        'RequestEntityTooLarge',
        'RequestEntityTooLarge',
        `The maximum size (${MAX_BYTES}) has been exceeded.`,
      );
    }

    const text = req.body.toString('utf8');
    const invalid = (message: string) => fail(400, 'BadRequest', 'InputJsonInvalid', message);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      const first = text.trimStart()[0];
      throw invalid(
        first === undefined
          ? 'Unexpected end when reading JSON.'
          : `Unexpected character encountered while parsing value: ${first}. Path '', line 1, position 1.`,
      );
    }
    if (!Array.isArray(body)) {
      const actual =
        body !== null && typeof body === 'object'
          ? 'StartObject'
          : typeof body === 'string'
            ? 'String'
            : 'Primitive';
      throw invalid(`Unexpected token when reading JSON. Expected: StartArray, actual: ${actual}.`);
    }
    const notConforming = `This resource is configured to receive event in '${SCHEMA}' schema. The JSON received does not conform to the expected schema.`;
    if (body.length === 0) throw invalid(notConforming);

    const accepted: PublishedEvent[] = body.map((raw: unknown, i) => {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(notConforming);
      const e = raw as Record<string, unknown>;
      for (const property of REQUIRED) {
        if (typeof e[property] !== 'string' || e[property] === '') {
          throw invalid(
            `This resource is configured for '${SCHEMA}' schema and requires '${property}' property to be set.`,
          );
        }
      }
      if (Number.isNaN(Date.parse(e.eventTime as string))) {
        throw invalid(
          `Could not convert string to DateTimeOffset: ${String(e.eventTime)}. Path '[${i}].eventTime'.`,
        );
      }
      return {
        id: e.id as string,
        // Event Grid stamps the topic's resource id (a publisher may leave it out).
        topic: typeof e.topic === 'string' && e.topic ? e.topic : this.resourceId(name),
        subject: e.subject as string,
        eventType: e.eventType as string,
        eventTime: e.eventTime as string,
        ...(e.data === undefined ? {} : { data: e.data }),
        dataVersion: typeof e.dataVersion === 'string' ? e.dataVersion : '',
        metadataVersion: '1',
      };
    });

    const receivedAt = new Date(this.em.clock.now()).toISOString();
    for (const event of accepted) events.push({ topic: name, event, publisher, receivedAt });
    // Event Grid answers a successful publish with 200 and an empty body.
    return json(200, undefined, headers);
  }
}
