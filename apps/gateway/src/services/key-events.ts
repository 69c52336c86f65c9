import type { Redis } from "ioredis";
import type { Logger } from "@runbridge/common";
import type { GatewayContext } from "../context";
import type { KeyCache } from "./key-cache";

/** Retries of a key change that could not be published, doubling from the first. */
const REPUBLISH_FIRST_MS = 250;
const REPUBLISH_FOR_MS = 30_000;

/**
 * Tells every gateway replica that a key changed (revoked, re-scoped), so
 * cached key records are dropped. If Redis is down, replicas have lost their
 * subscription too and read PostgreSQL until it is back; but this replica's
 * request connection can fail on its own (a reconnect, with no offline queue)
 * while the others still listen — then the change is published again, in the
 * background, for a while: their cache entries expire by themselves, their
 * open log streams only hear of it this way (or at their next periodic re-read).
 */
export async function publishKeyChange(ctx: GatewayContext, keyHash: string): Promise<void> {
  // This replica drops the key before answering, not when its own message comes back on the
  // subscriber connection: a caller's next request here must already see the revocation.
  ctx.keyServices.cache.invalidate(keyHash);
  try {
    await ctx.redis.publish(ctx.keys.keyChanged, keyHash);
  } catch (err) {
    ctx.logger.warn("could not publish key change; trying again in the background", { error: String(err) });
    republish(ctx, keyHash, Date.now() + REPUBLISH_FOR_MS, REPUBLISH_FIRST_MS);
  }
}

function republish(ctx: GatewayContext, keyHash: string, until: number, delayMs: number): void {
  setTimeout(() => {
    ctx.redis.publish(ctx.keys.keyChanged, keyHash).then(
      () => ctx.logger.info("published a key change after a retry"),
      (err: unknown) => {
        if (Date.now() + delayMs * 2 < until) republish(ctx, keyHash, until, delayMs * 2);
        else ctx.logger.error("gave up publishing a key change: other gateways drop the key from their caches within 15 s, and end its open log streams at their next re-read", { error: String(err) });
      },
    );
  }, delayMs).unref();
}

/**
 * Keeps a KeyCache in step with the key-change channel on a dedicated
 * subscriber connection. The cache is only trusted while the subscription is
 * live: when the connection drops, messages published meanwhile are lost, so
 * the cache is disabled until the channel is subscribed again, then starts empty.
 */
export async function followKeyChanges(subscriber: Redis, channel: string, cache: KeyCache, logger: Logger): Promise<() => void> {
  const onMessage = (ch: string, keyHash: string) => {
    if (ch === channel) cache.invalidate(keyHash);
  };
  subscriber.on("message", onMessage);
  const down = () => {
    if (cache.isLive) logger.warn("key-change subscription lost; authenticating from PostgreSQL until it is back");
    cache.setLive(false);
  };
  subscriber.on("close", down);
  subscriber.on("reconnecting", down);
  const up = () => {
    // ioredis re-subscribes by itself on reconnect; subscribing again is harmless and tells us when it is done.
    subscriber
      .subscribe(channel)
      .then(() => {
        if (!cache.isLive) logger.info("key-change subscription live");
        cache.setLive(true);
      })
      .catch((err: unknown) => logger.warn("could not re-subscribe to key changes", { error: String(err) }));
  };
  subscriber.on("ready", up);
  await subscriber.subscribe(channel);
  cache.setLive(true);
  // Stops following (at shutdown): the cache is simply no longer trusted.
  return () => {
    subscriber.off("message", onMessage).off("close", down).off("reconnecting", down).off("ready", up);
    cache.setLive(false);
  };
}
