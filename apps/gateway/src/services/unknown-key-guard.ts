import { TokenLookupGuard, type Logger } from "@runbridge/common";
import { RateLimitedError } from "../errors";

/**
 * Bounds the database lookups a client address can cause with tokens that
 * name no key — automation keys (rca_) and general API keys (rbk_) alike. The
 * token checksum only catches typos — anyone can make well-formed tokens —
 * and every new one costs a PostgreSQL query before it can be refused, on a
 * request that no key's rate limit counts. Each address (its /64, for IPv6)
 * may have `perMinute` such lookups come back empty in a minute, counting
 * those under way; past that, tokens this process has not found in the last
 * day are refused with 429 without a lookup until the minute ends (see
 * TokenLookupGuard). Per process, in memory: a bound on load, not a quota.
 */
export class UnknownKeyGuard extends TokenLookupGuard {
  constructor(perMinute: number, logger: Logger) {
    super("unknown-key", perMinute, { max: 10_000, ttlMs: 24 * 3600_000 }, (holder) =>
      logger.warn(
        "refusing API keys this gateway has not seen from one address without a lookup until its minute ends: it sent more tokens that name no key than UNKNOWN_KEY_LOOKUPS_PER_MINUTE (logged at most once a minute per address)",
        { clientIp: holder, limit: perMinute },
      ),
    );
  }

  /**
   * Before a lookup of `keyHash` for `clientIp` (in memory: no I/O): true when
   * it took a point of the address's budget, false for a known key; throws 429
   * when the address has used up its minute.
   */
  async admit(clientIp: string, keyHash: string): Promise<boolean> {
    const admission = await this.check(clientIp, keyHash);
    if (!admission.allowed) {
      throw new RateLimitedError(`Too many requests with unknown API keys from ${clientIp}; retry after the Retry-After header's seconds`, admission.retryAfterMs / 1000);
    }
    return admission.charged;
  }
}
