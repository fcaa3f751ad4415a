import { randomBytes, randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { MARKER_PREFIX, TAGS } from '../../../shared/constants';
import { RotatorError } from '../../../shared/errors';
import { ROTATORS } from '../../../shared/rotators';
import type { NewCredential, RotatorDeps, SecretContext } from '../../../shared/rotators/types';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * The contract every rotator keeps, run over each one in ROTATORS against local Azure with the
 * engine's real dependencies. A new kind gets this suite by adding one fixture line.
 */
const azure = useLocalAzure();

/**
 * The only place kinds are named: which seeded secret holds the kind (its tags and current value
 * come from the vault), and whether the provider keeps the marker on the credential.
 */
const FIXTURES: Record<string, { secret: keyof typeof SECRETS; keepsMarker: boolean }> = {
  'databricks-pat': { secret: 'pat', keepsMarker: true },
  'databricks-sp-secret': { secret: 'sp', keepsMarker: false },
  'entra-app-secret': { secret: 'app', keepsMarker: true },
};

const LIFETIME_SECONDS = 7 * 86_400;
/** Provider clocks and ours are the same emulated clock; a minute covers the round trips. */
const TOLERANCE_MS = 60_000;

/** The rejection of `promise`; fails the test if it resolves. */
const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );

test('every rotator has a fixture', () => {
  expect(Object.keys(FIXTURES).sort()).toEqual([...ROTATORS.keys()].sort());
});

describe.each([...ROTATORS.values()])('$kind', (rotator) => {
  let tenant: Tenant;
  let deps: RotatorDeps;
  let tags: Record<string, string>;
  let ctx: SecretContext;
  let target: unknown;
  let marker: string;
  let created: NewCredential;
  const fixture = FIXTURES[rotator.kind];

  beforeAll(async () => {
    if (!fixture) throw new Error(`no fixture for ${rotator.kind}`);
    tenant = await seedTenant(azure());
    deps = createEngine(tenant).deps;
    // Read as an application would: the tags and value the engine would see.
    const secret = await tenant.reader.getSecret(SECRETS[fixture.secret]);
    tags = secret.properties.tags ?? {};
    ctx = { vaultName: tenant.vaultName, secretName: secret.name, currentValue: secret.value ?? '' };
    marker = `${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}:${randomUUID()}`;
  });

  afterAll(async () => {
    await deps?.databricks.close();
  });

  test('parseTarget turns the secret’s tags into a target', () => {
    expect(tags[TAGS.kind]).toBe(rotator.kind);
    const parsed = rotator.parseTarget(tags, tenant.settings);
    expect(parsed).toEqual({ target: expect.anything() });
    target = (parsed as { target: unknown }).target;
    // describe() is for logs: something to read, and no secret in it.
    const described = rotator.describe(target);
    expect(described.length).toBeGreaterThan(0);
    expect(described).not.toContain(ctx.currentValue);
  });

  test('create returns an id, a value and an expiry close to the lifetime asked for', async () => {
    const now = azure().clock.now();
    const expiresAt = new Date(now + LIFETIME_SECONDS * 1000);
    created = await rotator.create(
      target,
      ctx,
      { lifetimeSeconds: LIFETIME_SECONDS, expiresAt, marker },
      deps,
    );
    expect(created.id).toEqual(expect.any(String));
    expect(created.id.length).toBeGreaterThan(0);
    expect(created.value).toEqual(expect.any(String));
    expect(created.value.length).toBeGreaterThanOrEqual(8);
    expect(created.value).not.toBe(ctx.currentValue);
    expect(created.value).not.toContain(created.id);
    expect(created.expiresAt).toBeInstanceOf(Date);
    // Never later than asked; an SP secret lives up to an hour less (its marker is in the lifetime).
    const short = expiresAt.getTime() - created.expiresAt.getTime();
    expect(short).toBeGreaterThanOrEqual(-TOLERANCE_MS);
    expect(short).toBeLessThanOrEqual(
      (rotator.kind === 'databricks-sp-secret' ? 3_600_000 : 0) + TOLERANCE_MS,
    );
  });

  test('verify passes for the new value, and the current one still works', async () => {
    await expect(rotator.verify(target, created.value, deps)).resolves.toBeUndefined();
    await expect(rotator.verify(target, ctx.currentValue, deps)).resolves.toBeUndefined();
  });

  test('list includes the new credential (with its marker where the provider keeps one) and the current one', async () => {
    const listed = await rotator.list(target, ctx, deps);
    const mine = listed.find((c) => c.id === created.id);
    expect(mine).toBeDefined();
    expect(mine?.createdAt).toBeInstanceOf(Date);
    expect(Math.abs((mine?.createdAt.getTime() ?? 0) - azure().clock.now())).toBeLessThanOrEqual(
      TOLERANCE_MS,
    );
    expect(Math.abs((mine?.expiresAt?.getTime() ?? 0) - created.expiresAt.getTime())).toBeLessThanOrEqual(
      TOLERANCE_MS,
    );
    if (fixture?.keepsMarker) expect(mine?.marker).toBe(marker);
    else expect(mine?.marker).toBeUndefined();
    // The credential the secret's state tag names is listed too.
    expect(listed.map((c) => c.id)).toContain(tags[TAGS.credentialId]);
    // A listing is identities, never values.
    expect(JSON.stringify(listed)).not.toContain(created.value);
    expect(JSON.stringify(listed)).not.toContain(ctx.currentValue);
  });

  test('revoke removes it: verify fails, list no longer has it', async () => {
    await rotator.revoke(target, created.id, ctx, deps);
    const e = await rejection(rotator.verify(target, created.value, deps));
    expect(e).toBeInstanceOf(RotatorError);
    expect(inspect(e, { depth: 6 })).not.toContain(created.value);
    expect((await rotator.list(target, ctx, deps)).map((c) => c.id)).not.toContain(created.id);
    // Only that one: the current credential is untouched.
    await expect(rotator.verify(target, ctx.currentValue, deps)).resolves.toBeUndefined();
  });

  test('revoke again is a no-op', async () => {
    await expect(rotator.revoke(target, created.id, ctx, deps)).resolves.toBeUndefined();
    await expect(rotator.verify(target, ctx.currentValue, deps)).resolves.toBeUndefined();
  });

  test('revoke of an id that never existed is a no-op', async () => {
    const before = (await rotator.list(target, ctx, deps)).map((c) => c.id).sort();
    await expect(rotator.revoke(target, randomUUID(), ctx, deps)).resolves.toBeUndefined();
    expect((await rotator.list(target, ctx, deps)).map((c) => c.id).sort()).toEqual(before);
  });

  test('verify of a garbage value fails without echoing it', async () => {
    const garbage = `garbage-${randomBytes(12).toString('hex')}`;
    const e = await rejection(rotator.verify(target, garbage, deps));
    expect(e).toBeInstanceOf(RotatorError);
    expect(inspect(e, { depth: 6 })).not.toContain(garbage);
  });

  test('credentials follow the emulated clock: a created credential stops verifying once expired', async () => {
    const short = await rotator.create(
      target,
      ctx,
      { lifetimeSeconds: 3600, expiresAt: new Date(azure().clock.now() + 3600_000), marker },
      deps,
    );
    await expect(rotator.verify(target, short.value, deps)).resolves.toBeUndefined();
    azure().clock.advance(DAY);
    await expect(rejection(rotator.verify(target, short.value, deps))).resolves.toBeInstanceOf(RotatorError);
    await rotator.revoke(target, short.id, ctx, deps);
  });
});
