import type { GatewayContext } from "../context";

/**
 * Tells every gateway replica that a key changed (revoked, re-scoped), so
 * cached key records are dropped. Best effort: caches also expire on their own.
 */
export async function publishKeyChange(ctx: GatewayContext, keyHash: string): Promise<void> {
  try {
    await ctx.redis.publish(ctx.keys.keyChanged, keyHash);
  } catch (err) {
    ctx.logger.warn("could not publish key change", { error: String(err) });
  }
}
