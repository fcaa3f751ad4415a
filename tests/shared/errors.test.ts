/** errorFacts: the service's own status, code and message behind an error, for telemetry. */
import { RestError } from '@azure/storage-blob';
import { errorFacts, ProviderError, RotatorError } from '../../shared/errors';

describe('errorFacts', () => {
  test('a ProviderError: its status, code and message', () => {
    expect(errorFacts(new ProviderError('databricks', 403, 'PERMISSION_DENIED', 'no can do'))).toEqual({
      status: 403,
      code: 'PERMISSION_DENIED',
      message: 'no can do',
    });
  });

  test("an Azure SDK RestError: the body's error code and message when it has them", () => {
    const e = new RestError('Operation returned an invalid status code', {
      statusCode: 503,
      code: 'ServiceUnavailable',
    });
    (e as { details?: unknown }).details = { error: { code: 'Throttled', message: 'Try again later' } };
    expect(errorFacts(e)).toEqual({ status: 503, code: 'Throttled', message: 'Try again later' });
    expect(errorFacts(new RestError('Forbidden', { statusCode: 403, code: 'Forbidden' }))).toEqual({
      status: 403,
      code: 'Forbidden',
      message: 'Forbidden',
    });
  });

  test('found through causes; none when no service answered', () => {
    const wrapped = new RotatorError('rotation failed', {
      cause: new ProviderError('graph', 429, undefined, 'slow down'),
    });
    expect(errorFacts(wrapped)).toEqual({ status: 429, code: undefined, message: 'slow down' });
    expect(
      errorFacts(new TypeError("Cannot read properties of undefined (reading 'error')")),
    ).toBeUndefined();
    expect(errorFacts('text')).toBeUndefined();
  });

  test('the message is redacted', () => {
    const e = new ProviderError('databricks', 400, 'BAD', `echoed dapi${'0'.repeat(32)} back`);
    expect(errorFacts(e)?.message).toBe('echoed [REDACTED] back');
  });
});
