import type { Redis } from "ioredis";
import type { Logger } from "@runbridge/common";
import type { PrismaClient } from "@runbridge/db";
import type { RedisKeys } from "@runbridge/contracts";
import { KeyCache } from "../services/key-cache";
import { followKeyChanges } from "../services/key-events";
import { KeyRateLimiter } from "../services/rate-limit";
import { KeyUsageRecorder } from "../services/key-usage";
import { RefusalAudit } from "../services/refusal-audit";
import { UnknownKeyGuard } from "../services/unknown-key-guard";

/** What automation-key authentication needs beyond the request: cache, limiter, usage recorder. */
export interface KeyServices {
  cache: KeyCache;
  limiter: KeyRateLimiter;
  usage: KeyUsageRecorder;
  unknownKeys: UnknownKeyGuard;
  /** Audit events of refused requests of known keys (429s, revoked or expired keys, allowlist and scope refusals). */
  refusals: RefusalAudit;
  /** The key-change subscriber connection (exposed so tests can force a reconnect). */
  subscriber: Redis;
}

export interface KeyServicesDeps {
  prisma: PrismaClient;
  /** The request-path (fail-fast) connection: rate limiting and audit de-duplication. */
  redis: Redis;
  /** A connection of its own, used only to follow the key-change channel. */
  subscriber: Redis;
  keys: RedisKeys;
  redisPrefix: string;
  logger: Logger;
  unknownKeyLookupsPerMinute: number;
}

export async function startKeyServices(deps: KeyServicesDeps): Promise<KeyServices & { close: () => Promise<void> }> {
  const cache = new KeyCache((keyHash) => deps.prisma.automationKey.findUnique({ where: { keyHash } }));
  const stopFollowing = await followKeyChanges(deps.subscriber, deps.keys.keyChanged, cache, deps.logger);
  const usage = new KeyUsageRecorder(deps.prisma, deps.logger);
  const limiter = new KeyRateLimiter(deps.redis, deps.redisPrefix);
  const close = async () => {
    stopFollowing();
    await usage.close();
  };
  const refusals = new RefusalAudit(deps.prisma, deps.redis, deps.keys, deps.logger);
  return { cache, limiter, usage, unknownKeys: new UnknownKeyGuard(deps.unknownKeyLookupsPerMinute, deps.logger), refusals, subscriber: deps.subscriber, close };
}
