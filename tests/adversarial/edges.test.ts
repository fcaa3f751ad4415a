/**
 * Attacks 6–8 and 12: what a tag writer or a hostile producer can put in text (notifications,
 * redaction) and at the local host's Event Grid webhook.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EVENT_GRID_MAX_BODY_BYTES, handleEventGridRequest } from '../../local/host/eventgrid';
import { parseSettings } from '../../shared/config';
import { safeJson } from '../../shared/notifications/channels/webhook';
import { teamsMessage } from '../../shared/notifications/channels/teams';
import { notification } from '../../shared/notifications/notification';
import { emailHtml, emailSubject } from '../../shared/notifications/render';
import { routeNotification } from '../../shared/notifications/routing';
import { MAX_REDACT_INPUT, redact, redactDimension, registerSecret } from '../../shared/redact';

const PHISH = '[log in to fix](https://evil.example/login) **urgent** www.evil.example';

const made = (details: Record<string, string>) =>
  notification(
    'rotation-failed',
    { vault: 'kv-one', secret: 'db-token', recipients: [] },
    details,
    new Date(),
  );

describe('attack 6: tag and event text is inert in every channel; tag recipients only in allowed domains', () => {
  test('Teams: no link, no emphasis, no auto-link in the title or any fact', () => {
    const card = JSON.stringify(teamsMessage(made({ reason: `bad tag: ${PHISH}`, credentialId: PHISH })));
    expect(card).not.toMatch(/\]\(https:/);
    expect(card).not.toContain('https://evil');
    expect(card).not.toContain('**urgent**');
    expect(card).not.toContain('www.evil');
    // Still readable: the escaped text is all there.
    expect(card).toContain('log in to fix');
  });

  test('email: the body is HTML-escaped and the subject is one line', () => {
    const n = {
      ...made({ reason: '<img src=x onerror=alert(1)>' }),
      secret: 'db-token\r\nBcc: all@evil.example',
    };
    expect(emailHtml(n)).not.toContain('<img');
    expect(emailSubject(n)).not.toMatch(/[\r\n]/);
  });

  test('webhook JSON carries no raw markup a receiver could paste into a page', () => {
    const body = safeJson({ notification: made({ reason: '</script><script>alert(1)</script>' }) });
    expect(body).not.toMatch(/[<>]/);
    expect(JSON.parse(body).notification.details.reason).toBe('</script><script>alert(1)</script>');
  });

  test('notify tag addresses outside NOTIFY_ALLOWED_DOMAINS never receive mail; empty takes none', () => {
    const base = {
      KEY_VAULT_URIS: 'https://kv-one.vault.azure.net',
      AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      MAIL_SENDER: 'rotator@contoso.example',
    };
    const n = { ...made({}), recipients: ['thief@evil.example', 'owner@contoso.example'] };
    for (const [allowed, to] of [
      ['', undefined],
      ['contoso.example', ['owner@contoso.example']],
    ] as const) {
      const { messages } = routeNotification(n, parseSettings({ ...base, NOTIFY_ALLOWED_DOMAINS: allowed }));
      expect(JSON.stringify(messages)).not.toContain('evil.example');
      expect(messages.find((m) => m.channel === 'email')?.to).toEqual(to);
    }
  });
});

describe('attack 7: redaction never hides a structured dimension', () => {
  test('a short value equal to a vault name is not registered; a long one does not mask the dimension', () => {
    registerSecret('kv-prod');
    expect(redact('vault kv-prod')).toBe('vault kv-prod');
    const long = 'kv-prod-credentials-2026';
    registerSecret(long);
    expect(redact(`value ${long}`)).toBe('value [REDACTED]');
    expect(redactDimension('secret', long)).toBe(long);
    expect(redactDimension('vault', 'kv-prod')).toBe('kv-prod');
    // A free-text dimension is still redacted, and a "name" that is not a name is too.
    expect(redactDimension('reason', long)).toBe('[REDACTED]');
    expect(redactDimension('secret', `dapi${'0'.repeat(32)} x`)).toBe('[REDACTED] x');
  });
});

describe('attack 8: redaction is bounded on adversarial input', () => {
  test('1 MB of `eyJ-` is cut to the input limit before any pattern runs; JWTs are still masked', () => {
    const out = redact('eyJ-'.repeat(262_144));
    expect(out.length).toBeLessThan(MAX_REDACT_INPUT + 100);
    expect(out).toMatch(/…\[truncated \d+ characters\]$/);
    const jwt = `eyJhbGciOi.${'a'.repeat(20)}.${'b'.repeat(20)}`;
    expect(redact(`${'eyJ-'.repeat(1000)} token ${jwt} end`)).toMatch(/token \[REDACTED\] end$/);
    expect(redact(`x-${jwt}`)).toBe('x-[REDACTED]');
    expect(redact(`x${jwt}`)).toBe(`x${jwt}`);
  });
});

describe('attack 12: the local host answers Event Grid as the real extension does', () => {
  let server: Server;
  let base: string;
  const invoked: unknown[] = [];
  const warnings: string[] = [];
  beforeAll(async () => {
    server = createServer(
      (req, res) =>
        void handleEventGridRequest(
          {
            systemKey: 'k3y',
            has: (name) => name === 'onKeyVaultEvent',
            invoke: async (_name, event) => {
              invoked.push(event);
              return true;
            },
            log: (_level, message) => warnings.push(message),
          },
          req,
          res,
        ),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/runtime/webhooks/eventgrid?functionName=onKeyVaultEvent`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const post = (url: string, body: string, type?: string) =>
    fetch(url, { method: 'POST', body, headers: type ? { 'aeg-event-type': type } : {} });

  test('the system key is required', async () => {
    expect((await post(base, '[]', 'Notification')).status).toBe(401);
    expect((await post(`${base}&code=wrong`, '[]', 'Notification')).status).toBe(401);
  });

  test('aeg-event-type: Unsubscribe → 202; missing or unknown → 400; validation handshake', async () => {
    const url = `${base}&code=k3y`;
    expect((await post(url, '[]', 'Unsubscribe')).status).toBe(202);
    expect((await post(url, '[]')).status).toBe(400);
    expect((await post(url, '[]', 'Whatever')).status).toBe(400);
    const v = await post(
      url,
      JSON.stringify([{ id: '1', data: { validationCode: 'abc' } }]),
      'SubscriptionValidation',
    );
    expect(await v.json()).toEqual({ validationResponse: 'abc' });
  });

  test('a body over the limit is 413; entries that are not objects are rejected one by one', async () => {
    const url = `${base}&code=k3y`;
    expect((await post(url, `"${'x'.repeat(EVENT_GRID_MAX_BODY_BYTES)}"`, 'Notification')).status).toBe(413);
    invoked.length = 0;
    const res = await post(
      url,
      JSON.stringify([null, 7, { id: 'ok', eventType: 'x', data: {} }, []]),
      'Notification',
    );
    expect(res.status).toBe(200);
    expect(invoked).toEqual([{ id: 'ok', eventType: 'x', data: {} }]);
    expect(warnings.filter((w) => /batch entry \d is not an object/.test(w))).toHaveLength(3);
  });
});
