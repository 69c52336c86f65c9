import type { OutputChunk } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";

const MAX_ENTRIES = 20_000;
/** Operations run 15 minutes at most: an hour after its last chunk, a stream is no longer live. */
const TTL_SECONDS = 3600;

/**
 * Live output goes to a bounded Redis stream per operation (for live logs);
 * the final, complete capture is stored with the result in Postgres.
 * Secrets were masked by the runner before the chunk left the server.
 */
export async function appendOutput(ctx: DispatcherContext, serverId: string, chunk: OutputChunk): Promise<void> {
  const key = ctx.keys.operationLog(chunk.operationId);
  try {
    await ctx.redis
      .multi()
      .xadd(key, "MAXLEN", "~", MAX_ENTRIES, "*", "stream", chunk.stream, "offset", String(chunk.offset), "data", chunk.data, "server", serverId)
      .expire(key, TTL_SECONDS)
      .exec();
  } catch (err) {
    ctx.logger.debug("could not append live output", { operationId: chunk.operationId, error: String(err) });
  }
}
