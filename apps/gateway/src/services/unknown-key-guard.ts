import { LookupMissBudget } from "@runbridge/common";
import { RateLimitedError } from "../errors";

/**
 * Bounds the database lookups a client address can cause with tokens that
 * name no key. The token checksum only catches typos — anyone can make
 * well-formed tokens — and every new one costs a PostgreSQL query before it
 * can be refused, on a request that no key's rate limit counts. Each address
 * may have `perMinute` such lookups come back empty in a minute; past that,
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

  /** Throws 429 when `clientIp` has used up its lookups of unknown tokens (in memory: no I/O). */
  async admit(clientIp: string): Promise<void> {
    const waitMs = await this.budget.blockedFor(clientIp);
    if (waitMs !== null) throw new RateLimitedError(`Too many requests with unknown API keys from ${clientIp}; retry after the Retry-After header's seconds`, waitMs / 1000);
  }

  /** A lookup for `clientIp` found no key. */
  async missed(clientIp: string): Promise<void> {
    await this.budget.missed(clientIp);
  }
}
