import { Queue } from "bullmq";
import { QueueName, redisKeys } from "@runbridge/contracts";
import { Sealer, createFailFastRedis, createLogger, createSubscriber } from "@runbridge/common";
import { createDb } from "@runbridge/db";
import { startKeyServices } from "./auth/key-services";
import type { GatewayConfig } from "./config";
import type { GatewayContext } from "./context";
import { observeDbPool } from "./metrics";
import { CompletionWaiter } from "./services/completion-waiter";
import { OperationCounts } from "./services/operation-counts";
import { Presence } from "./services/presence";

/** Opens the gateway's connections. Used by main.ts and by tests (which run the app in-process). */
export async function buildGatewayContext(config: GatewayConfig): Promise<GatewayContext & { startDraining: () => void; close: () => Promise<void> }> {
  const logger = createLogger("gateway", config.LOG_LEVEL);
  const keys = redisKeys(config.REDIS_PREFIX);
  const db = createDb(config.DATABASE_URL, { max: config.DB_POOL_SIZE, connectionTimeoutMillis: 3000 });
  const prisma = db.prisma;
  observeDbPool(db.operations);
  // Request-path Redis fails fast while Redis is down, so requests get 503 rather than hanging.
  const redis = createFailFastRedis(config.REDIS_URL);
  const queueConnection = createFailFastRedis(config.REDIS_URL);
  const subscriber = createSubscriber(config.REDIS_URL);
  // Its own connection: its reconnects tell the key cache when invalidations may have been missed.
  const keySubscriber = createSubscriber(config.REDIS_URL);
  for (const [name, conn] of [["redis", redis], ["queue", queueConnection], ["subscriber", subscriber], ["key-subscriber", keySubscriber]] as const) {
    conn.on("error", (err: Error) => logger.warn("redis connection error", { connection: name, error: err.message }));
  }
  const queue = new Queue(QueueName.Operations, { connection: queueConnection, prefix: keys.bull });
  queue.on("error", (err) => logger.warn("queue error", { error: err.message }));
  const drain = new AbortController();
  const waiter = new CompletionWaiter(subscriber, keys.operationFinished, drain.signal);
  await waiter.start();
  const keyServices = await startKeyServices({
    prisma,
    redis,
    subscriber: keySubscriber,
    keys,
    redisPrefix: config.REDIS_PREFIX,
    logger,
    unknownKeyLookupsPerMinute: config.UNKNOWN_KEY_LOOKUPS_PER_MINUTE,
  });
  const ctx: GatewayContext = {
    config,
    logger,
    prisma,
    operations: db.operations,
    redis,
    keys,
    queue,
    sealer: Sealer.fromConfig(config),
    waiter,
    presence: new Presence(redis, keys),
    operationCounts: new OperationCounts(db.operations, config.OPERATION_COUNT_REFRESH_SECONDS * 1000),
    keyServices,
    draining: drain.signal,
  };
  const close = async () => {
    await queue.close().catch(() => undefined);
    await keyServices.close();
    keySubscriber.disconnect();
    subscriber.disconnect();
    redis.disconnect();
    queueConnection.disconnect();
    await db.close();
  };
  return { ...ctx, startDraining: () => drain.abort(), close };
}
