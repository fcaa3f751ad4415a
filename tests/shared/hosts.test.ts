import { isAllowedOrigin, parseDatabricksHost } from '../../shared/hosts';

/** The SSRF guard for `databricks-host` (design section 4): pure functions, no emulator. */

const WS = 'adb-1234567890123456.7.azuredatabricks.net';
const LOCAL = 'localhost:8444';

describe('parseDatabricksHost', () => {
  test.each([
    ['a bare workspace host', WS],
    ['with https://', `https://${WS}`],
    ['with a trailing slash', `https://${WS}/`],
    ['a bare host with a trailing slash', `${WS}/`],
    ['with surrounding spaces', `  ${WS}  `],
    ['in capitals', `HTTPS://${WS.toUpperCase()}`],
    ['with the default port', `https://${WS}:443`],
  ])('accepts %s', (_name, value) => {
    expect(parseDatabricksHost(value, [])).toEqual({ origin: `https://${WS}` });
  });

  test.each([
    ['http', `http://${WS}`, /must use https/],
    ['another scheme', `ftp://${WS}`, /must use https/],
    ['a websocket scheme', `wss://${WS}`, /must use https/],
    ['another domain', 'example.com', /not an Azure Databricks host/],
    ['the bare parent domain', 'azuredatabricks.net', /not an Azure Databricks host/],
    ['a lookalike suffix', 'azuredatabricks.net.evil.com', /not an Azure Databricks host/],
    ['a lookalike with the workspace in front', `${WS}.evil.com`, /not an Azure Databricks host/],
    ['a lookalike without the dot', 'evilazuredatabricks.net', /not an Azure Databricks host/],
    ['a trailing dot', `${WS}.`, /not an Azure Databricks host/],
    ['a fragment that looks like the domain', 'evil.com#.azuredatabricks.net', /bare host/],
    ['a query that looks like the domain', 'evil.com?.azuredatabricks.net', /bare host/],
    ['a backslash that looks like the domain', 'evil.com\\.azuredatabricks.net', /bare host/],
    ['user info', `user@${WS}`, /bare host/],
    ['user info and password', `https://user:pass@${WS}`, /bare host/],
    ['user info hiding another host', `${WS}@evil.com`, /bare host/],
    ['a path', `https://${WS}/api/2.0/token/create`, /bare host/],
    ['a query', `https://${WS}/?o=123`, /bare host/],
    ['a port on a workspace host', `${WS}:8443`, /not an Azure Databricks host/],
    ['an IPv4 literal', '10.0.0.4', /not an Azure Databricks host/],
    ['the metadata endpoint', '169.254.169.254', /not an Azure Databricks host/],
    ['an IPv6 literal', '[::1]', /not an Azure Databricks host/],
    ['localhost without allowlisting', 'localhost', /not an Azure Databricks host/],
    ['an empty value', '', /not a host name/],
    ['a scheme without a host', 'https://', /not a host name/],
    ['a bad port', `${WS}:99999`, /not a host name/],
  ])('refuses %s', (_name, value, reason) => {
    const r = parseDatabricksHost(value, []);
    expect(r).toEqual({ error: expect.stringMatching(reason) });
  });

  test('an allowlisted host:port is accepted with exactly that port', () => {
    expect(parseDatabricksHost(LOCAL, [LOCAL])).toEqual({ origin: `https://${LOCAL}` });
    expect(parseDatabricksHost(`https://${LOCAL}/`, [LOCAL])).toEqual({ origin: `https://${LOCAL}` });
    for (const other of ['localhost', 'localhost:8445', 'https://localhost:443', `http://${LOCAL}`]) {
      expect(parseDatabricksHost(other, [LOCAL])).toHaveProperty('error');
    }
  });

  test('the allowlist can admit a port on a workspace host', () => {
    expect(parseDatabricksHost(`${WS}:8443`, [`${WS}:8443`])).toEqual({ origin: `https://${WS}:8443` });
  });

  test('errors quote the value so the person fixing the tag sees it', () => {
    expect(parseDatabricksHost('http://x.example', [])).toEqual({
      error: '"http://x.example" must use https',
    });
  });
});

describe('isAllowedOrigin', () => {
  test.each([
    [`https://${WS}`, []],
    [`https://${WS}:443`, []],
    [`https://accounts.azuredatabricks.net`, []],
    [`https://${LOCAL}`, [LOCAL]],
    [`https://LOCALHOST:8444`, [LOCAL]],
    [`https://${LOCAL}`, ['LocalHost:8444']],
    [`https://${WS}:8443`, [`${WS}:8443`]],
  ])('allows %s (allowlist %j)', (origin, allowed) => {
    expect(isAllowedOrigin(origin, allowed)).toBe(true);
  });

  test.each([
    [`http://${WS}`, []],
    [`https://${WS}:8443`, []],
    ['https://azuredatabricks.net.evil.com', []],
    ['https://evil.com', []],
    ['https://10.0.0.4', []],
    ['https://[::1]:8444', [LOCAL]],
    ['https://127.0.0.1:8444', [LOCAL]],
    ['https://localhost:8445', [LOCAL]],
    ['https://localhost', [LOCAL]],
    [`http://${LOCAL}`, [LOCAL]],
    [`https://${LOCAL}`, ['localhost']],
    [`https://${LOCAL}`, [`https://${LOCAL}`]],
    ['not a url', [LOCAL]],
    ['', []],
  ])('refuses %s (allowlist %j)', (origin, allowed) => {
    expect(isAllowedOrigin(origin, allowed)).toBe(false);
  });
});
