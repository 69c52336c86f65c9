import type { ServerResponse } from "node:http";
import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";

/** Every key's limit is "requests per minute": a fixed 60 s window per key. */
export const RATE_WINDOW_SECONDS = 60;

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Milliseconds until the current window ends. */
  resetMs: number;
}

/**
 * Per-key rate limiting shared by every gateway replica through Redis
 * (rate-limiter-flexible's atomic INCR + PEXPIRE script), keyed by the
 * automation key's id.
 *
 * Keys have different limits, and a RateLimiterRedis has one `points` value,
 * so there is one limiter per distinct limit (at most 1000). They share one
 * Redis key per automation key, so changing a key's limit keeps what it
 * already consumed in the current window.
 *
 * A key found over its limit is blocked in this process's memory for the
 * rest of its window (rate-limiter-flexible's inMemoryBlockOnConsumed), so
 * 429s are answered without Redis.
 *
 * Redis unreachable: each limiter falls back to an in-memory limiter with the
 * same limit (rate-limiter-flexible's insuranceLimiter), i.e. every replica
 * enforces the limit on its own until Redis is back. See docs/keys.md.
 */
export class KeyRateLimiter {
  private readonly limiters = new Map<number, RateLimiterRedis>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private limiter(points: number): RateLimiterRedis {
    let limiter = this.limiters.get(points);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: `${this.prefix}:ratelimit`,
        points,
        duration: RATE_WINDOW_SECONDS,
        // Do not queue behind a dead connection: go straight to the insurance limiter.
        rejectIfRedisNotReady: true,
        // Once a key is over its limit it stays refused until its window ends (a fixed window):
        // this replica remembers that, so a flood of refused requests costs no Redis round trip.
        inMemoryBlockOnConsumed: points + 1,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix: "insurance", points, duration: RATE_WINDOW_SECONDS }),
      });
      this.limiters.set(points, limiter);
    }
    return limiter;
  }

  async consume(keyId: string, limit: number): Promise<RateDecision> {
    try {
      const res = await this.limiter(limit).consume(keyId);
      return { allowed: true, limit, remaining: res.remainingPoints, resetMs: res.msBeforeNext };
    } catch (err) {
      if (err instanceof RateLimiterRes) return { allowed: false, limit, remaining: 0, resetMs: err.msBeforeNext };
      throw err;
    }
  }
}

/**
 * The usual rate-limit headers on every answer that passed the limiter:
 * RateLimit-* (IETF draft: Reset in seconds from now) and the older X-RateLimit-*
 * (Reset as a Unix time in seconds, as GitHub and most CI tooling read it).
 */
export function setRateLimitHeaders(res: ServerResponse, d: RateDecision): void {
  const resetSeconds = String(Math.max(1, Math.ceil(d.resetMs / 1000)));
  const limit = String(d.limit);
  const remaining = String(Math.max(0, d.remaining));
  res.setHeader("RateLimit-Limit", limit);
  res.setHeader("RateLimit-Remaining", remaining);
  res.setHeader("RateLimit-Reset", resetSeconds);
  res.setHeader("X-RateLimit-Limit", limit);
  res.setHeader("X-RateLimit-Remaining", remaining);
  res.setHeader("X-RateLimit-Reset", String(Math.ceil((Date.now() + d.resetMs) / 1000)));
}
