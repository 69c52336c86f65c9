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

  constructor(
    private readonly operations: OperationStore,
    private readonly refreshMs: number,
  ) {}

  async get(keyIds: string[]): Promise<Map<string, number>> {
    if (keyIds.length === 0) return new Map();
    const now = Date.now();
    const bases = new Map<string, Base>();
    const stale: string[] = [];
    for (const id of keyIds) {
      const base = this.bases.get(id);
      if (base && now - base.countedAt < this.refreshMs) bases.set(id, base);
      else stale.push(id);
    }
    if (stale.length > 0) {
      for (const b of await this.operations.countByKeyBefore(stale, SETTLE_SECONDS)) {
        const base = { count: b.count, until: b.until, countedAt: now };
        this.bases.set(b.keyId, base);
        bases.set(b.keyId, base);
      }
    }
    const recent = await this.operations.countByKeySince([...bases].map(([keyId, base]) => ({ keyId, since: base.until })));
    return new Map(keyIds.map((id) => [id, (bases.get(id)?.count ?? 0) + (recent.get(id) ?? 0)]));
  }
}
