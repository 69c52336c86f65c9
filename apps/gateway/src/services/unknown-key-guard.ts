import { LookupMissBudget } from "@runbridge/common";
import { RateLimitedError } from "../errors";

/**
 * Bounds the database lookups a client address can cause with tokens that
 * name no key. The token checksum only catches typos — anyone can make
 * well-formed tokens — and every new one costs a PostgreSQL query before it
 * can be refused, on a request that no key's rate limit counts. Each address
 * (its /64, for IPv6) may have `perMinute` such lookups come back empty in a
 * minute, counting those under way; past that,
 * tokens this process has not seen recently are refused with 429 without a
 * lookup until the minute ends. Keys in the cache (every warm key), and
 * keys this process has found in the last day, are never affected (see
 * KeyCache). Per process, in memory: a bound on load, not a quota.
 */
export class UnknownKeyGuard {
  private readonly budget: LookupMissBudget;

  constructor(perMinute: number) {
    this.budget = new LookupMissBudget("unknown-key", perMinute);
  }

  /**
   * Before a lookup for `clientIp` (in memory: no I/O): takes its point, or
   * throws 429 when the address (its /64, for IPv6) has used up its minute.
   */
  async admit(clientIp: string): Promise<void> {
    const waitMs = await this.budget.take(clientIp);
    if (waitMs !== null) throw new RateLimitedError(`Too many requests with unknown API keys from ${clientIp}; retry after the Retry-After header's seconds`, waitMs / 1000);
  }

  /** The admitted lookup found a key, or could not be made: it does not count. */
  async notMissed(clientIp: string): Promise<void> {
    await this.budget.giveBack(clientIp);
  }
}
