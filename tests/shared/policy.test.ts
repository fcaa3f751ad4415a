import { randomBytes } from 'node:crypto';
import { parseSettings, type Settings } from '../../shared/config';
import { STATE_TAGS, TAGS } from '../../shared/constants';
import { readPolicy, type PolicyResult, type RotationPolicy } from '../../shared/policy';
import { ROTATORS } from '../../shared/rotators';
import type { Finding } from '../../shared/rotators/types';

/** Unit tests of the tag contract (design section 2): pure functions, no emulator. */

const ALLOWED_LOCAL = 'localhost:8444';
const settings: Settings = parseSettings({
  KEY_VAULT_URIS: 'https://kv-prod.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  DATABRICKS_ALLOWED_HOSTS: ALLOWED_LOCAL,
  ROTATION_DEFAULT_VALIDITY_DAYS: '60',
  ROTATION_DEFAULT_WINDOW_DAYS: '20',
  ROTATION_DEFAULT_GRACE_HOURS: '12',
});

const HOST = 'adb-1234567890123456.7.azuredatabricks.net';
const ACCOUNT_ID = '0d26daa6-5e44-4c97-a497-ef015f91254a';
const SP_ID = '7253429870123456';
const APP_ID = '3f1a2b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b';

/** One valid tag set per kind: the baseline each test changes one thing in. */
const VALID = {
  pat: { [TAGS.kind]: 'databricks-pat', [TAGS.databricksHost]: HOST },
  sp: {
    [TAGS.kind]: 'databricks-sp-secret',
    [TAGS.databricksAccountId]: ACCOUNT_ID,
    [TAGS.databricksSpId]: SP_ID,
  },
  app: { [TAGS.kind]: 'entra-app-secret', [TAGS.entraAppId]: APP_ID },
} as const;

const read = (tags: Record<string, string> | undefined): PolicyResult => readPolicy(tags, settings, ROTATORS);

function ok(tags: Record<string, string>): RotationPolicy {
  const r = read(tags);
  if (r.status !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r.policy;
}

function findings(tags: Record<string, string>): Finding[] {
  const r = read(tags);
  if (r.status !== 'invalid') throw new Error(`expected invalid, got ${r.status}`);
  return r.findings;
}

/** The single finding the tags produce, which must name `tag` and explain itself with `reason`. */
function onlyFinding(tags: Record<string, string>, tag: string, reason: RegExp): void {
  expect(findings(tags)).toEqual([{ tag, reason: expect.stringMatching(reason) }]);
}

describe('opting in', () => {
  test.each([
    ['no tags at all', undefined],
    ['an empty tag map', {}],
    ['unrelated tags', { owner: 'data-eng', env: 'prod' }],
    ['our other tags without rotation-kind', { [TAGS.databricksHost]: HOST, [TAGS.validityDays]: '30' }],
  ])('%s is not opted in', (_name, tags) => {
    expect(read(tags)).toEqual({ status: 'not-opted-in' });
  });

  test('a valid secret gets the defaults from the settings', () => {
    const policy = ok({ ...VALID.pat });
    expect(policy).toMatchObject({
      kind: 'databricks-pat',
      target: { origin: `https://${HOST}` },
      validityDays: 60,
      windowDays: 20,
      graceHours: 12,
      notify: [],
      state: {},
    });
    expect(policy.rotator).toBe(ROTATORS.get('databricks-pat'));
  });

  test('explicit values override the defaults; numbers and kind may carry spaces', () => {
    const policy = ok({
      ...VALID.app,
      [TAGS.kind]: ' entra-app-secret ',
      [TAGS.validityDays]: ' 180 ',
      [TAGS.windowDays]: '45',
      [TAGS.graceHours]: '0',
      [TAGS.notify]: 'ops@contoso.com, teams ,,webhook',
    });
    expect(policy).toMatchObject({
      kind: 'entra-app-secret',
      target: { appId: APP_ID },
      validityDays: 180,
      windowDays: 45,
      graceHours: 0,
      notify: ['ops@contoso.com', 'teams', 'webhook'],
    });
  });

  test('each kind reads its own target', () => {
    expect(ok({ ...VALID.sp }).target).toEqual({ accountId: ACCOUNT_ID, spId: SP_ID });
    expect(ok({ ...VALID.app }).target).toEqual({ appId: APP_ID });
    expect(ok({ ...VALID.pat, [TAGS.databricksHost]: `https://${HOST}/` }).target).toEqual({
      origin: `https://${HOST}`,
    });
    expect(ok({ ...VALID.pat, [TAGS.databricksHost]: ALLOWED_LOCAL }).target).toEqual({
      origin: `https://${ALLOWED_LOCAL}`,
    });
  });

  test('policy tags are everything but the state tags, so unrelated tags are carried forward', () => {
    const policy = ok({
      ...VALID.pat,
      owner: 'data-eng',
      [TAGS.credentialId]: 'abc0abc0abc0',
      [TAGS.previousCredentialId]: 'def0def0def0',
      [TAGS.revokePreviousAfter]: '2030-01-01T00:00:00.000Z',
      [TAGS.rotationId]: '5b0c6f1e-8a44-4a4c-9f0e-2f1c3a7d9e01',
      [TAGS.rotationStarted]: '7e3d2c1b-0a99-4f88-8e77-6d5c4b3a2f10@2030-01-01T00:00:00.000Z',
    });
    expect(policy.policyTags).toEqual({ ...VALID.pat, owner: 'data-eng' });
  });
});

describe('each bad tag is a finding with a clear reason', () => {
  test('an unknown kind names the kinds there are', () => {
    const f = findings({ [TAGS.kind]: 'databricks-token', [TAGS.databricksHost]: HOST });
    expect(f).toHaveLength(1);
    expect(f[0]?.tag).toBe(TAGS.kind);
    expect(f[0]?.reason).toContain('unknown kind "databricks-token"');
    for (const kind of ROTATORS.keys()) expect(f[0]?.reason).toContain(kind);
  });

  test.each(['', '   ', 'Databricks-PAT', 'true'])(
    'kind %j is unknown, not silently not-opted-in',
    (kind) => {
      expect(findings({ ...VALID.pat, [TAGS.kind]: kind })[0]?.tag).toBe(TAGS.kind);
    },
  );

  test.each([
    [TAGS.validityDays, 'ninety', /"ninety".*whole number from 1 to 730/],
    [TAGS.validityDays, '1.5', /whole number/],
    [TAGS.validityDays, '-5', /whole number/],
    [TAGS.validityDays, '1e2', /whole number/],
    [TAGS.validityDays, '', /whole number/],
    [TAGS.validityDays, '0', /at least 1/],
    [TAGS.validityDays, '731', /at most 730/],
    [TAGS.validityDays, '99999999999999999999999', /at most 730/],
    [TAGS.windowDays, 'soon', /whole number from 1 to 365/],
    [TAGS.windowDays, '0', /at least 1/],
    [TAGS.windowDays, '366', /at most 365/],
    [TAGS.graceHours, 'a day', /whole number from 0 to 720/],
    [TAGS.graceHours, '721', /at most 720/],
  ])('%s = %j', (tag, value, reason) => {
    onlyFinding({ ...VALID.pat, [TAGS.validityDays]: '400', [tag]: value }, tag, reason);
  });

  test.each([
    ['equal to', '30', '30'],
    ['longer than', '30', '45'],
  ])('a window %s the validity', (_how, validity, window) => {
    onlyFinding(
      { ...VALID.pat, [TAGS.validityDays]: validity, [TAGS.windowDays]: window },
      TAGS.windowDays,
      new RegExp(`window \\(${window} days\\) must be shorter than the validity \\(${validity} days\\)`),
    );
  });

  test('a window that is only too long against the default validity is still caught', () => {
    onlyFinding({ ...VALID.pat, [TAGS.windowDays]: '60' }, TAGS.windowDays, /validity \(60 days\)/);
  });

  test('a missing host', () => {
    onlyFinding({ [TAGS.kind]: 'databricks-pat' }, TAGS.databricksHost, /required.*workspace URL/);
  });

  test.each([
    ['a host outside the allowlist', 'example.com', /not an Azure Databricks host/],
    ['a lookalike host', 'adb-1.2.azuredatabricks.net.evil.com', /not an Azure Databricks host/],
    ['a local port that is not allowlisted', 'localhost:8445', /not an Azure Databricks host/],
    ['an http host', `http://${HOST}`, /must use https/],
    ['a host with a path', `${HOST}/api/2.0`, /bare host/],
    ['a host with a query', `${HOST}?o=1`, /bare host/],
    ['a host with user info', `user:pass@${HOST}`, /bare host/],
    ['no host at all', 'https://', /not a host name/],
  ])('%s', (_name, host, reason) => {
    onlyFinding({ ...VALID.pat, [TAGS.databricksHost]: host }, TAGS.databricksHost, reason);
  });

  test.each([
    ['a bad account id', TAGS.databricksAccountId, 'acme-prod', /account id \(GUID\)/],
    ['a non-numeric sp id', TAGS.databricksSpId, 'etl-sp', /numeric id/],
    ['an sp id given as application id', TAGS.databricksSpId, APP_ID, /numeric id/],
  ])('%s', (_name, tag, value, reason) => {
    onlyFinding({ ...VALID.sp, [tag]: value }, tag, reason);
  });

  test('a missing account id and sp id are two findings', () => {
    expect(findings({ [TAGS.kind]: 'databricks-sp-secret' })).toEqual(
      expect.arrayContaining([
        { tag: TAGS.databricksAccountId, reason: expect.stringContaining('required') },
        { tag: TAGS.databricksSpId, reason: expect.stringContaining('required') },
      ]),
    );
  });

  test.each([
    ['a bad app id', 'reporting-app', /"reporting-app".*application \(client\) id/],
    ['an empty app id', '', /required/],
  ])('%s', (_name, value, reason) => {
    onlyFinding({ ...VALID.app, [TAGS.entraAppId]: value }, TAGS.entraAppId, reason);
  });

  test.each([
    'https://contoso.webhook.office.com/webhookb2/abc',
    'http://hooks.example.com/x',
    'mailto:ops@contoso.com',
    'pagerduty',
  ])('a notify entry %j that is neither an email nor a channel', (entry) => {
    onlyFinding(
      { ...VALID.pat, [TAGS.notify]: `ops@contoso.com, ${entry}` },
      TAGS.notify,
      new RegExp(`"${entry.replace(/[.?*+/]/g, '\\$&')}" is neither an email address nor a channel`),
    );
  });

  test.each(['rotation-validty-days', 'rotation-window', 'databricks-hostname', 'entra-app'])(
    'a misspelled tag %j',
    (tag) => {
      onlyFinding({ ...VALID.pat, [tag]: '30' }, tag, /unknown tag \(a misspelling\?\)/);
    },
  );

  test('a misspelling in another case is reported too, not ignored', () => {
    // Key Vault tag names are case-sensitive: `Rotation-Window-Days` would silently fall back to the default.
    onlyFinding(
      { ...VALID.pat, 'Rotation-Window-Days': '10' },
      'Rotation-Window-Days',
      /unknown tag \(a misspelling\?\)/,
    );
  });

  test('too many tags for the state tags to fit in 15', () => {
    const extra = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`team-${i}`, 'x']));
    // kind + host + 8 = 10 policy tags: exactly room for the 5 state tags.
    expect(read({ ...VALID.pat, ...extra(8) }).status).toBe('ok');
    onlyFinding({ ...VALID.pat, ...extra(9) }, TAGS.kind, /too many tags: 11 policy tags.*5 state tags.*15/);
    // State tags already on the version do not count against the policy tags.
    expect(
      read({
        ...VALID.pat,
        ...extra(8),
        [TAGS.credentialId]: 'a0a0a0a0',
        [TAGS.rotationId]: '5b0c6f1e-8a44-4a4c-9f0e-2f1c3a7d9e01',
      }).status,
    ).toBe('ok');
  });

  test('several problems are reported at once', () => {
    const r = read({
      [TAGS.kind]: 'databricks-sp-secret',
      [TAGS.databricksAccountId]: 'not-a-guid',
      [TAGS.databricksSpId]: 'abc',
      [TAGS.validityDays]: 'lots',
      [TAGS.graceHours]: '9999',
      [TAGS.notify]: 'https://evil.example/hook',
      'rotation-windw-days': '10',
    });
    expect(r).toEqual({
      status: 'invalid',
      kind: 'databricks-sp-secret',
      findings: expect.any(Array),
    });
    const tags = (r as { findings: Finding[] }).findings.map((f) => f.tag).sort();
    expect(tags).toEqual(
      [
        TAGS.databricksAccountId,
        TAGS.databricksSpId,
        TAGS.graceHours,
        TAGS.notify,
        TAGS.validityDays,
        'rotation-windw-days',
      ].sort(),
    );
  });
});

describe('the Key Vault samples’ tag names', () => {
  test('CredentialId and ValidityPeriodDays are read as ours', () => {
    const policy = ok({ ...VALID.pat, CredentialId: '0a1b2c3d4e5f', ValidityPeriodDays: '120' });
    expect(policy.validityDays).toBe(120);
    expect(policy.state.credentialId).toBe('0a1b2c3d4e5f');
    // The new version carries our names only.
    expect(policy.policyTags).toEqual({ ...VALID.pat, [TAGS.validityDays]: '120' });
  });

  test('ProviderAddress stands for each kind’s own address tag', () => {
    expect(ok({ [TAGS.kind]: 'databricks-pat', ProviderAddress: HOST }).target).toEqual({
      origin: `https://${HOST}`,
    });
    expect(
      ok({
        [TAGS.kind]: 'databricks-sp-secret',
        [TAGS.databricksAccountId]: ACCOUNT_ID,
        ProviderAddress: SP_ID,
      }).target,
    ).toEqual({ accountId: ACCOUNT_ID, spId: SP_ID });
    expect(ok({ [TAGS.kind]: 'entra-app-secret', ProviderAddress: APP_ID }).target).toEqual({
      appId: APP_ID,
    });
    for (const rotator of ROTATORS.values()) expect(rotator.providerAddressTag).toBeTruthy();
  });

  test('an alias’s value is validated like ours, and named by our tag', () => {
    onlyFinding({ ...VALID.pat, ValidityPeriodDays: 'forever' }, TAGS.validityDays, /"forever"/);
    onlyFinding(
      { [TAGS.kind]: 'databricks-pat', ProviderAddress: 'evil.com' },
      TAGS.databricksHost,
      /evil\.com/,
    );
  });

  test('our own tag wins when both are present', () => {
    const policy = ok({
      ...VALID.pat,
      [TAGS.validityDays]: '45',
      ValidityPeriodDays: '700',
      [TAGS.credentialId]: 'aaaa0000aaaa',
      CredentialId: 'bbbb0000bbbb',
      ProviderAddress: 'evil.com',
    });
    expect(policy.validityDays).toBe(45);
    expect(policy.state.credentialId).toBe('aaaa0000aaaa');
    expect(policy.target).toEqual({ origin: `https://${HOST}` });
    expect(Object.keys(policy.policyTags)).not.toEqual(expect.arrayContaining(['ValidityPeriodDays']));
    expect(policy.policyTags).not.toHaveProperty('CredentialId');
    expect(policy.policyTags).not.toHaveProperty('ProviderAddress');
  });
});

describe('state tags', () => {
  test('are parsed', () => {
    const policy = ok({
      ...VALID.sp,
      [TAGS.credentialId]: 'secret-2',
      [TAGS.previousCredentialId]: 'secret-1',
      [TAGS.revokePreviousAfter]: '2030-05-01T12:00:00.000Z',
      [TAGS.rotationId]: '5b0c6f1e-8a44-4a4c-9f0e-2f1c3a7d9e01',
      [TAGS.rotationStarted]: '7e3d2c1b-0a99-4f88-8e77-6d5c4b3a2f10@2030-04-01T08:30:00.000Z',
    });
    expect(policy.state).toEqual({
      credentialId: 'secret-2',
      previousCredentialId: 'secret-1',
      revokePreviousAfter: new Date('2030-05-01T12:00:00.000Z'),
      rotationId: '5b0c6f1e-8a44-4a4c-9f0e-2f1c3a7d9e01',
      rotationStarted: {
        rotationId: '7e3d2c1b-0a99-4f88-8e77-6d5c4b3a2f10',
        at: new Date('2030-04-01T08:30:00.000Z'),
      },
    });
    expect(policy.state.revokePreviousAfter).toBeInstanceOf(Date);
  });

  test.each([
    ['no @', 'r1'],
    ['no id', '@2030-04-01T08:30:00.000Z'],
    ['no date', 'r1@'],
    ['a bad date', 'r1@yesterday'],
  ])('a rotation-started with %s is a finding, not a crash', (_name, value) => {
    onlyFinding(
      { ...VALID.app, [TAGS.rotationStarted]: value },
      TAGS.rotationStarted,
      /rotation id.*ISO time/,
    );
  });

  test.each([
    ['databricks-pat', 'pat', '../../token-management/tokens/x'],
    ['entra-app-secret', 'app', 'not-a-guid'],
    ['databricks-sp-secret', 'sp', 'a/b/../c'],
  ] as const)('a %s credential id that could leave its URL path is a finding', (kind, key, id) => {
    for (const tag of [TAGS.credentialId, TAGS.previousCredentialId])
      onlyFinding({ ...VALID[key], [tag]: id }, tag, new RegExp(`not a ${kind} credential id`));
  });

  test('a rotation id that is not a GUID is a finding', () => {
    onlyFinding({ ...VALID.app, [TAGS.rotationId]: 'r1' }, TAGS.rotationId, /not a rotation id/);
  });

  test('empty state tags count as absent', () => {
    const empty = Object.fromEntries(STATE_TAGS.map((t) => [t, '']));
    expect(ok({ ...VALID.app, ...empty }).state).toEqual({});
  });
});

describe('never throws', () => {
  /** A small deterministic generator, so a failure can be replayed from the printed seed. */
  function rng(seed: number) {
    let s = seed >>> 0 || 1;
    return () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 2 ** 32;
    };
  }
  const NAMES = [
    ...Object.values(TAGS),
    'CredentialId',
    'ValidityPeriodDays',
    'ProviderAddress',
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    'rotation-',
    'rotation-kind ',
    'Rotation-Kind',
    '',
  ];
  const VALUES = [
    ...ROTATORS.keys(),
    ...Object.values(VALID).flatMap((v) => Object.values(v)),
    '',
    ' ',
    '0',
    '-1',
    '1e309',
    'NaN',
    'Infinity',
    '@',
    '@@@',
    'a@b',
    ',,,',
    'null',
    'undefined',
    '__proto__',
    'toString',
    'https://',
    'http://[::1]:80/',
    'javascript:alert(1)',
    '\u0000',
    '\ud800',
    '😀'.repeat(200),
    'x'.repeat(5000),
    '%00%ff',
    '[object Object]',
  ];

  test('on random and garbage tag maps', () => {
    const seed = Date.now();
    const random = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const garbage = () =>
      random() < 0.3 ? pick(VALUES) : randomBytes(Math.floor(random() * 40)).toString('latin1');
    for (let i = 0; i < 2000; i++) {
      const tags: Record<string, string> = Object.create(random() < 0.5 ? Object.prototype : null);
      const n = Math.floor(random() * 20);
      for (let j = 0; j < n; j++) {
        const name = random() < 0.8 ? pick(NAMES) : garbage();
        // defineProperty, so `__proto__` becomes an own tag as JSON.parse would make it.
        Object.defineProperty(tags, name, {
          value: garbage(),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      if (random() < 0.7) tags[TAGS.kind] = pick([...ROTATORS.keys(), garbage()]);
      let result: PolicyResult;
      try {
        result = read(tags);
      } catch (e) {
        throw new Error(`readPolicy threw on ${JSON.stringify(tags)} (seed ${seed})`, { cause: e });
      }
      expect(['ok', 'invalid', 'not-opted-in']).toContain(result.status);
      if (result.status === 'invalid') {
        expect(result.findings.length).toBeGreaterThan(0);
        for (const f of result.findings) {
          expect(typeof f.tag).toBe('string');
          expect(f.reason.length).toBeGreaterThan(0);
        }
      }
    }
  });

  test('on tags parsed from JSON with a __proto__ key', () => {
    const tags = JSON.parse(
      `{"rotation-kind":"databricks-pat","databricks-host":"${HOST}","__proto__":{"rotation-validity-days":"1"}}`,
    ) as Record<string, string>;
    expect(() => read(tags)).not.toThrow();
  });
});
