import { LRUCache } from "lru-cache";
import { RateLimiterMemory } from "rate-limiter-flexible";

/** More runners than one dispatcher holds (the bench connects 10,000). */
const KNOWN_TOKENS_MAX = 50_000;

/**
 * Bounds the PostgreSQL lookups a client address can cause with runner tokens
 * that name no server. A token's checksum only catches typos — anyone can make
 * well-formed tokens — and each new one costs a lookup before the handshake
 * can be refused. Each address may have `perMinute` lookups come back empty in
 * a minute; past that, tokens this process has not accepted recently are
 * refused without a lookup until the minute ends (the runner retries with
 * backoff). Tokens it accepted before — every runner connected here since it
 * started, unless pushed out — are never affected. Per process, in memory: a
 * bound on load, not a quota.
 */
export class HandshakeGuard {
  private readonly misses: RateLimiterMemory;
  private readonly known = new LRUCache<string, true>({ max: KNOWN_TOKENS_MAX });

  constructor(private readonly perMinute: number) {
    this.misses = new RateLimiterMemory({ keyPrefix: "unknown-runner-token", points: perMinute, duration: 60 });
  }

  /** Whether a handshake from `address` with this token may be looked up (in memory: no I/O). */
  async mayLookUp(address: string, tokenHash: string): Promise<boolean> {
    if (this.known.has(tokenHash)) return true;
    const used = await this.misses.get(address);
    return !used || used.consumedPoints < this.perMinute;
  }

  /** The lookup found a server for the token, and it was let in. */
  accepted(tokenHash: string): void {
    this.known.set(tokenHash, true);
  }

  /** The lookup found no server for the token (or only a revoked one). */
  async refused(address: string, tokenHash: string): Promise<void> {
    this.known.delete(tokenHash);
    await this.misses.penalty(address, 1);
  }
}
