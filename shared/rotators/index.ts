import { databricksPat } from './databricks-pat';
import { databricksSpSecret } from './databricks-sp-secret';
import { entraAppSecret } from './entra-app-secret';
import type { Rotator } from './types';

/** The kinds of credential this service rotates: the one list to extend with a new kind. */
const KINDS: Rotator[] = [databricksPat, databricksSpSecret, entraAppSecret];

export const ROTATORS: ReadonlyMap<string, Rotator> = new Map(KINDS.map((r) => [r.kind, r]));
