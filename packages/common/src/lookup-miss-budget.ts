import { RateLimiterMemory } from "rate-limiter-flexible";

/**
 * How many database lookups that find nothing a client address may cause in a
 * minute: tokens (API keys, runner tokens) carry a public checksum, so anyone
 * can make well-formed ones, and each new one costs a lookup before it can be
 * refused. Per process, in memory: a bound on load, not a quota. The gateway
 * (unknown automation keys) and the dispatcher (unknown runner tokens) both
 * keep one.
 */
export class LookupMissBudget {
  private readonly misses: RateLimiterMemory;

  constructor(
    keyPrefix: string,
    private readonly perMinute: number,
  ) {
    this.misses = new RateLimiterMemory({ keyPrefix, points: perMinute, duration: 60 });
  }

  /** Milliseconds until `address` may cause lookups again, once it has used up its minute's misses; null while it may (no I/O). */
  async blockedFor(address: string): Promise<number | null> {
    const used = await this.misses.get(address);
    return used && used.consumedPoints >= this.perMinute ? used.msBeforeNext : null;
  }

  /** A lookup for `address` found nothing. */
  async missed(address: string): Promise<void> {
    await this.misses.penalty(address, 1);
  }
}
