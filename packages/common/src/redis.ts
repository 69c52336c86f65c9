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
 * A connection for request paths (gateway): commands fail fast while Redis is
 * down instead of queueing forever, so requests get a 503 rather than hanging.
 */
export function createFailFastRedis(url: string, opts: RedisOptions = {}): Redis {
  return createRedis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000, ...opts });
}
