/**
 * Key Vault names are case-insensitive and lists come in case-insensitive ordinal order. This Map keeps
 * its keys in that order as they are added, so a list page costs the page (not a sort of the vault) and
 * a lookup by any spelling costs O(log n) (not a scan): what lets one process hold and page a tenant of
 * a million secrets. Only the spelling first stored is a key (Key Vault keeps the first spelling).
 */
export class NameOrderedMap<T> extends Map<string, T> {
  /** The keys, sorted by their upper-case form. */
  private readonly order: string[] = [];

  /** Index of the first key whose upper-case form is ≥ `upper`. */
  private lowerBound(upper: string): number {
    const { order } = this;
    // Names are usually added in order (seeding, listing): the common case is an append.
    const last = order[order.length - 1];
    if (last === undefined || last.toUpperCase() < upper) return order.length;
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((order[mid] as string).toUpperCase() < upper) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  override set(key: string, value: T): this {
    // Map's constructor calls set() before `order` exists; it is never given entries here.
    if (!super.has(key)) this.order.splice(this.lowerBound(key.toUpperCase()), 0, key);
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    if (!super.has(key)) return false;
    const upper = key.toUpperCase();
    for (let i = this.lowerBound(upper); i < this.order.length; i++) {
      if (this.order[i] === key) {
        this.order.splice(i, 1);
        break;
      }
    }
    return super.delete(key);
  }

  override clear(): void {
    this.order.length = 0;
    super.clear();
  }

  /** The stored spelling of `name`, compared case-insensitively; undefined when there is none. */
  keyOf(name: string): string | undefined {
    if (super.has(name)) return name;
    const upper = name.toUpperCase();
    const i = this.lowerBound(upper);
    const key = this.order[i];
    return key !== undefined && key.toUpperCase() === upper ? key : undefined;
  }

  /** Entries `start` to `end` (exclusive) in list order. */
  range(start: number, end: number): [string, T][] {
    return this.order.slice(start, end).map((key) => [key, super.get(key) as T]);
  }
}
