/**
 * SSRF guard for `databricks-host`: a credential is only ever sent to an Azure Databricks workspace
 * (`https://*.azuredatabricks.net`) or a host an admin allowlisted in DATABRICKS_ALLOWED_HOSTS.
 */

const AZURE_DATABRICKS = /^[a-z0-9-]+(\.[a-z0-9-]+)*\.azuredatabricks\.net$/;

/** Normalises a host tag (`adb-1.2.azuredatabricks.net` or `https://…`) to an origin, or explains why not. */
export function parseDatabricksHost(
  value: string,
  allowedHosts: readonly string[],
): { origin: string } | { error: string } {
  const raw = value.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { error: `"${value}" is not a host name` };
  }
  if (url.protocol !== 'https:') return { error: `"${value}" must use https` };
  if (
    url.username ||
    url.password ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search ||
    url.hash
  ) {
    return { error: `"${value}" must be a bare host, without credentials, path or query` };
  }
  if (!isAllowedOrigin(url.origin, allowedHosts)) {
    return {
      error: `"${url.host}" is not an Azure Databricks host (*.azuredatabricks.net) nor in DATABRICKS_ALLOWED_HOSTS`,
    };
  }
  return { origin: url.origin };
}

/** Whether an https origin is an Azure Databricks host or allowlisted (`host` or `host:port`). */
export function isAllowedOrigin(origin: string, allowedHosts: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:') return false;
  const host = url.host.toLowerCase();
  return (
    (AZURE_DATABRICKS.test(url.hostname.toLowerCase()) && url.port === '') ||
    allowedHosts.some((h) => h.toLowerCase() === host)
  );
}
