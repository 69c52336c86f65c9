import { LRUCache } from "lru-cache";
import type { OperationStore } from "@runbridge/db";

/**
 * An operation's row is written by one short statement: one created more than
 * this long before a count ran was committed by then, so the count saw it.
 */
const SETTLE_SECONDS = 60;

interface Base {
  /** The key's operations created before `until`. */
  count: number;
  until: Date;
  /** When it was counted (this process's clock). */
  countedAt: number;
}

/**
 * Each automation key's operation count (`operation_count`), without counting
 * a key's whole history on every call: the dashboard re-reads the key list
 * every few seconds, and a busy key keeps hundreds of thousands of operations
 * (a full count of a million took 125 ms). The count of a key's operations
 * created before a cutoff is kept in memory and redone every `refreshMs`; the
 * ones since the cutoff are counted on every call through the
 * (automation_key_id, created_at) index, a handful of rows. New operations
 * show at once; deleted ones (retention, a deleted server) within `refreshMs`.
 */
export class OperationCounts {
  private readonly bases = new LRUCache<string, Base>({ max: 10_000 });
  /**
   * Counts of older operations in flight, by key: when a key's count expires,
   * every dashboard then open asks for it at once, and one count of a busy
   * key's history (tens of milliseconds) serves them all.
   */
  private readonly counting = new Map<string, Promise<Base | undefined>>();

  constructor(
    private readonly operations: OperationStore,
    private readonly refreshMs: number,
  ) {}

  async get(keyIds: string[]): Promise<Map<string, number>> {
    if (keyIds.length === 0) return new Map();
    const now = Date.now();
    const bases = new Map<string, Base>();
    const pending = new Map<string, Promise<Base | undefined>>();
    const stale: string[] = [];
    for (const id of keyIds) {
      const base = this.bases.get(id);
      const inFlight = this.counting.get(id);
      if (base && now - base.countedAt < this.refreshMs) bases.set(id, base);
      else if (inFlight) pending.set(id, inFlight);
      else stale.push(id);
    }
    for (const [id, promise] of this.countBefore(stale, now)) pending.set(id, promise);
    for (const [id, promise] of pending) {
      const base = await promise;
      if (base) bases.set(id, base);
    }
    const recent = await this.operations.countByKeySince([...bases].map(([keyId, base]) => ({ keyId, since: base.until })));
    return new Map(keyIds.map((id) => [id, (bases.get(id)?.count ?? 0) + (recent.get(id) ?? 0)]));
  }

  /** One count for `keyIds`, shared through `counting` until it ends (a failed one is retried by the next call). */
  private countBefore(keyIds: string[], now: number): Map<string, Promise<Base | undefined>> {
    const byKeyId = new Map<string, Promise<Base | undefined>>();
    if (keyIds.length === 0) return byKeyId;
    const counted = this.operations.countByKeyBefore(keyIds, SETTLE_SECONDS).then((rows) => {
      const bases = new Map<string, Base>();
      for (const b of rows) {
        const base = { count: b.count, until: b.until, countedAt: now };
        this.bases.set(b.keyId, base);
        bases.set(b.keyId, base);
      }
      return bases;
    });
    for (const id of keyIds) {
      const mine = counted.then((bases) => bases.get(id));
      const settled = () => {
        if (this.counting.get(id) === mine) this.counting.delete(id);
      };
      mine.then(settled, settled);
      this.counting.set(id, mine);
      byKeyId.set(id, mine);
    }
    return byKeyId;
  }
}
