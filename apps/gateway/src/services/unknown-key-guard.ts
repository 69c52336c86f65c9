import { LRUCache } from "lru-cache";
import { LookupMissBudget } from "@runbridge/common";
import { RateLimitedError } from "../errors";

/**
 * Bounds the database lookups a client address can cause with tokens that
 * name no key — automation keys (rca_) and general API keys (rbk_) alike. The
 * token checksum only catches typos — anyone can make well-formed tokens —
 * and every new one costs a PostgreSQL query before it can be refused, on a
 * request that no key's rate limit counts. Each address (its /64, for IPv6)
 * may have `perMinute` such lookups come back empty in a minute, counting
 * those under way; past that, tokens this process has not found recently are
 * refused with 429 without a lookup until the minute ends. Per process, in
 * memory: a bound on load, not a quota.
 *
 * Tokens this process has found a key for in the last day are never
 * refused, nor counted: a key not used for a while must get through although
 * its address (a NAT, a CI provider's shared egress) also sent invented
 * tokens. Only whether to refuse: such a key is looked up all the same.
 */
export class UnknownKeyGuard {
  private readonly budget: LookupMissBudget;
  private readonly known = new LRUCache<string, true>({ max: 10_000, ttl: 24 * 3600_000 });

  constructor(perMinute: number) {
    this.budget = new LookupMissBudget("unknown-key", perMinute);
  }

  /**
   * Before a lookup of `keyHash` for `clientIp` (in memory: no I/O): true when
   * it took a point of the address's budget, false for a known key; throws 429
   * when the address has used up its minute.
   */
  async admit(clientIp: string, keyHash: string): Promise<boolean> {
    if (this.known.has(keyHash)) return false;
    const waitMs = await this.budget.take(clientIp);
    if (waitMs !== null) throw new RateLimitedError(`Too many requests with unknown API keys from ${clientIp}; retry after the Retry-After header's seconds`, waitMs / 1000);
    return true;
  }

  /** The lookup found a key: remembered, and its point (`charged`) given back. */
  async found(clientIp: string, keyHash: string, charged: boolean): Promise<void> {
    this.known.set(keyHash, true);
    if (charged) await this.budget.giveBack(clientIp);
  }

  /** The lookup could not be made (PostgreSQL unreachable): not a miss. */
  async failed(clientIp: string, charged: boolean): Promise<void> {
    if (charged) await this.budget.giveBack(clientIp);
  }
}
