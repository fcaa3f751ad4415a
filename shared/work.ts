import { z } from 'zod';

/** A message on the `rotation-requests` queue: one operation on one secret, planned by the scan. */
export const workItemSchema = z.strictObject({
  op: z.enum(['rotate', 'revoke-previous', 'reconcile']),
  vault: z.string().min(1),
  secret: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, { error: 'expected a Key Vault secret name' }),
  /** Why it was planned, for logs: `due`, `expired`, `grace-period-over`, `interrupted-rotation`. */
  reason: z.string().max(200).optional(),
  force: z.boolean().optional(),
  dryRun: z.boolean().optional(),
});

export type WorkItem = z.infer<typeof workItemSchema>;
