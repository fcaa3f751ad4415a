/** Runs `fn` over `items`, at most `limit` at a time, in order of start; resolves when all are done. */
export async function atMost<T>(
  limit: number,
  items: readonly T[],
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}
