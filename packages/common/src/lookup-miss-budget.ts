import ipaddr from "ipaddr.js";
import { LRUCache } from "lru-cache";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

/**
 * Who a budget is kept for: the address, or for IPv6 its /64 — one host is
 * routinely given a whole /64, and would otherwise have 2^64 budgets.
 */
export function budgetHolder(address: string): string {
  try {
    const parsed = ipaddr.process(address);
    if (parsed.kind() === "ipv4") return parsed.toString();
    return `${(parsed as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16)).join(":")}::/64`;
  } catch {
    return address;
  }
}

/**
 * How many database lookups that find nothing a client address may cause in a
 * minute: tokens (API keys, runner tokens) carry a public checksum, so anyone
 * can make well-formed ones, and each new one costs a lookup before it can be
 * refused. Per process, in memory: a bound on load, not a quota. The gateway
 * (unknown automation keys) and the dispatcher (unknown runner tokens) both
 * keep one.
 *
 * A lookup takes its point before it starts, and gives it back if it found
 * something (or could not be made): counted only afterwards, any number of
 * concurrent lookups would all pass a budget that has not seen them yet.
 */
export class LookupMissBudget {
  private readonly misses: RateLimiterMemory;

  constructor(keyPrefix: string, perMinute: number) {
    this.misses = new RateLimiterMemory({ keyPrefix, points: perMinute, duration: 60 });
  }

  /**
   * Takes a point for a lookup from `address`: null when it may go ahead (no
   * I/O), else the milliseconds until its minute's lookups are free again.
   */
  async take(address: string): Promise<number | null> {
    const holder = budgetHolder(address);
    try {
      await this.misses.consume(holder, 1);
      return null;
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      // A refused lookup never happens: its point is not kept (a later give-back must reopen the budget).
      await this.misses.reward(holder, 1);
      return err.msBeforeNext;
    }
  }

  /** The lookup a point was taken for found something, or failed: it was not a miss. */
  async giveBack(address: string): Promise<void> {
    await this.misses.reward(budgetHolder(address), 1);
  }
}

/** Whether a lookup may go ahead; `charged` when it took a point, `retryAfterMs` when it may not. */
export interface LookupAdmission {
  allowed: boolean;
  charged: boolean;
  retryAfterMs: number;
}

/**
 * A LookupMissBudget that remembers the tokens it has seen found: those are
 * never refused, nor counted — a valid token must get through although its
 * address (a NAT, a CI provider's shared egress, a proxy) also sent invented
 * ones. Only whether to ask: a known token is looked up all the same. The
 * gateway (automation and general API keys) and the dispatcher (runner
 * tokens) each keep one.
 */
export class TokenLookupGuard {
  private readonly budget: LookupMissBudget;
  private readonly known: LRUCache<string, true>;
  /** Budget holders told about (onRefusing) within the last minute. */
  private readonly told = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 });

  constructor(
    keyPrefix: string,
    perMinute: number,
    known: { max: number; ttlMs?: number },
    /**
     * Told when an address (its budget holder) starts being refused, at most once a minute each: an
     * operator must learn that someone is guessing tokens — and that a NAT's runners or clients new to
     * this process wait with them — without a log line per refusal in a flood.
     */
    private readonly onRefusing: (holder: string) => void = () => undefined,
  ) {
    this.budget = new LookupMissBudget(keyPrefix, perMinute);
    this.known = new LRUCache<string, true>(known.ttlMs ? { max: known.max, ttl: known.ttlMs } : { max: known.max });
  }

  /** Before a lookup of `tokenHash` for `address` (in memory: no I/O). */
  async check(address: string, tokenHash: string): Promise<LookupAdmission> {
    if (this.known.has(tokenHash)) return { allowed: true, charged: false, retryAfterMs: 0 };
    const waitMs = await this.budget.take(address);
    if (waitMs === null) return { allowed: true, charged: true, retryAfterMs: 0 };
    const holder = budgetHolder(address);
    if (!this.told.has(holder)) {
      this.told.set(holder, true);
      this.onRefusing(holder);
    }
    return { allowed: false, charged: false, retryAfterMs: waitMs };
  }

  /** The lookup found the token's owner: remembered, and its point (`charged`) given back. */
  async found(address: string, tokenHash: string, charged: boolean): Promise<void> {
    this.known.set(tokenHash, true);
    if (charged) await this.budget.giveBack(address);
  }

  /** The lookup could not be made (PostgreSQL unreachable): not a miss. */
  async failed(address: string, charged: boolean): Promise<void> {
    if (charged) await this.budget.giveBack(address);
  }

  /** The token turned out to name nothing (any more): no longer let through uncounted. */
  forget(tokenHash: string): void {
    this.known.delete(tokenHash);
  }
}
