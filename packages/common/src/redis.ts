import { Redis, type RedisOptions } from "ioredis";

/**
 * ioredis connection with settings BullMQ requires for blocking connections
 * (maxRetriesPerRequest: null) and a bounded reconnect backoff.
 */
export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...opts,
  });
}

/**
 * A connection for SUBSCRIBE: without ioredis's ready check. The check sends INFO once connected;
 * a SUBSCRIBE written in the moment between the connection and that INFO puts the connection in
 * subscriber mode first, the INFO is refused, and ioredis drops the connection and starts over —
 * losing the subscription for a while at every start whose timing falls there (a dispatcher's
 * relay was seen deaf to relayed requests for seconds after boot). The check only waits for Redis
 * to finish loading its data, which a subscription does not need.
 */
export function createSubscriber(url: string, opts: RedisOptions = {}): Redis {
  return createRedis(url, { ...opts, enableReadyCheck: false });
}

/** A request-path command that has had no answer this long is failed (the caller answers 503). */
export const FAIL_FAST_COMMAND_TIMEOUT_MS = 3000;

/**
 * A connection for request paths (gateway): commands fail fast while Redis is
 * down instead of queueing forever, so requests get a 503 rather than hanging —
 * also when Redis stops answering on a connection that still looks open (a
 * partition or failover leaving a half-open socket). Never for blocking
 * commands (BRPOPLPUSH, XREAD BLOCK), which have connections of their own.
 */
export function createFailFastRedis(url: string, opts: RedisOptions = {}): Redis {
  return createRedis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000, commandTimeout: FAIL_FAST_COMMAND_TIMEOUT_MS, ...opts });
}
