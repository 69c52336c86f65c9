import { LRUCache } from "lru-cache";
import { LookupMissBudget } from "@runbridge/common";

/** More runners than one dispatcher holds (the bench connects 10,000). */
const KNOWN_TOKENS_MAX = 50_000;

/**
 * Bounds the PostgreSQL lookups a client address can cause with runner tokens
 * that name no server (a LookupMissBudget): each address may have `perMinute`
 * lookups come back empty in a minute; past that, tokens this process has not
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

  /** Whether a handshake from `address` with this token may be looked up (in memory: no I/O). */
  async mayLookUp(address: string, tokenHash: string): Promise<boolean> {
    return this.known.has(tokenHash) || (await this.budget.blockedFor(address)) === null;
  }

  /** The lookup found a server for the token, and it was let in. */
  accepted(tokenHash: string): void {
    this.known.set(tokenHash, true);
  }

  /** The lookup found no server for the token (or only a revoked one). */
  async refused(address: string, tokenHash: string): Promise<void> {
    this.known.delete(tokenHash);
    await this.budget.missed(address);
  }
}
