import { z } from 'zod';

/** A message on the `scan-requests` queue: scan one vault. The timer enqueues one per configured vault. */
export const scanRequestSchema = z.strictObject({
  vault: z.string().min(1).max(127),
  /** When the timer planned it, for logs. */
  scheduledAt: z.iso.datetime().optional(),
});

export type ScanRequest = z.infer<typeof scanRequestSchema>;
