import type { Emulator } from '../server';
import { Router } from '../http';
import type { Workspace } from '../state';

/** One Databricks workspace's REST API (its own origin). */
export function workspaceRouter(_em: Emulator, _ws: Workspace): Router {
  return new Router();
}

/** The Databricks account host: service-principal OAuth secrets. */
export function accountsRouter(_em: Emulator): Router {
  return new Router();
}
