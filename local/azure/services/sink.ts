import type { Router } from '../http';

export interface SinkDelivery {
  channel: string;
  headers: Record<string, string>;
  /** Parsed JSON when the body is JSON, the raw text otherwise. */
  body: unknown;
  rawBody: string;
  at: string;
}

/** A webhook receiver for Teams-style and generic webhooks: `POST /sink/{channel}` records the delivery. */
export class WebhookSink {
  readonly deliveries: SinkDelivery[] = [];

  routes(router: Router): void {
    router.add('POST', '/sink/:channel', (req) => {
      const rawBody = req.body.toString('utf8');
      let body: unknown = rawBody;
      try {
        body = JSON.parse(rawBody);
      } catch {
        // not JSON: keep the text
      }
      const headers = Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v ?? '')]),
      );
      this.deliveries.push({
        channel: req.params.channel as string,
        headers,
        body,
        rawBody,
        at: new Date().toISOString(),
      });
      // Teams incoming webhooks answer 200 with "1"; Workflows answer 202. Either is success.
      return { status: 200, body: '1' };
    });
  }

  forChannel(channel: string): SinkDelivery[] {
    return this.deliveries.filter((d) => d.channel === channel);
  }

  reset(): void {
    this.deliveries.length = 0;
  }
}
