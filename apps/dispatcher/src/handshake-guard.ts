import { LRUCache } from "lru-cache";
import { LookupMissBudget } from "@runbridge/common";

/** More runners than one dispatcher holds (the bench connects 10,000). */
const KNOWN_TOKENS_MAX = 50_000;

/**
 * Bounds the PostgreSQL lookups a client address can cause with runner tokens
 * that name no server (a LookupMissBudget): each address (its /64, for IPv6)
 * may have `perMinute` lookups come back empty in a minute, counting those
 * under way; past that, tokens this process has not
 * accepted recently are refused without a lookup until the minute ends (the
 * runner retries with backoff). Tokens it accepted before — every runner
 * connected here since it started, unless pushed out — are never affected.
 */
export class HandshakeGuard {
  private readonly budget: LookupMissBudget;
  private readonly known = new LRUCache<string, true>({ max: KNOWN_TOKENS_MAX });

  constructor(perMinute: number) {
    this.budget = new LookupMissBudget("unknown-runner-token", perMinute);
  }

  /**
   * Whether a handshake from `address` with this token may be looked up (in
   * memory: no I/O). `charged`: the lookup took a point of the address's
   * budget, to be given back if it finds a server or cannot be made.
   */
  async admit(address: string, tokenHash: string): Promise<{ allowed: boolean; charged: boolean }> {
    if (this.known.has(tokenHash)) return { allowed: true, charged: false };
    return { allowed: (await this.budget.take(address)) === null, charged: true };
  }

  /** The lookup found a server for the token, and it was let in. */
  async accepted(address: string, tokenHash: string, charged: boolean): Promise<void> {
    this.known.set(tokenHash, true);
    if (charged) await this.budget.giveBack(address);
  }

  /** The lookup could not be made (PostgreSQL unreachable): not a miss. */
  async failed(address: string, charged: boolean): Promise<void> {
    if (charged) await this.budget.giveBack(address);
  }

  /** The lookup found no server for the token (or only a revoked one): its point stays taken. */
  refused(tokenHash: string): void {
    this.known.delete(tokenHash);
  }
}
