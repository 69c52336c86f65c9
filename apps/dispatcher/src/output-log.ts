import { Limits, type OutputChunk } from "@runbridge/contracts";
import type { ChainableCommander } from "ioredis";
import type { DispatcherContext } from "./context";

const MAX_ENTRIES = 20_000;
/** Operations run 15 minutes at most: an hour after its last chunk, a stream is no longer live. */
const TTL_SECONDS = 3600;
/**
 * Once its operation has ended, how long a stream stays: long enough for a client following it to
 * drain it and to resume after a dropped connection; then log readers get the stored capture from
 * PostgreSQL. Kept the hour, every stream of the last hour sat in Redis (up to the live-log budget each).
 */
export const ENDED_TTL_SECONDS = 120;
/**
 * Charged per chunk on top of its bytes, for what Redis keeps besides the data
 * (entry id, field names, stream, offset, server id), so many tiny chunks are bounded too.
 */
const ENTRY_CHARGE_BYTES = 128;
/**
 * A chunk's bytes are charged at 5/4: Redis' allocator (jemalloc) rounds each
 * allocation up to a size class at most 25 % larger, and a 64 KiB chunk fills
 * a listpack (allocation) of its own; so the budget bounds memory, not only data.
 */
const DATA_CHARGE_NUM = 5;
const DATA_CHARGE_DEN = 4;
/**
 * Where live output stops once the budget is spent. It carries no `data`: the
 * gateway's SSE endpoint sends it as a `cut_off` event (the CLI and the Action
 * then print the stored end of each stream); the dashboard's output API, as an
 * empty stdout entry.
 */
const CUT_OFF_NOTE =
  "live output was cut off here: this operation's live log reached its size limit; the stored result has the complete tail of each stream";

/**
 * Atomically: charge the chunk to the operation's byte counter; append it if
 * the total stays within the budget; on the chunk that first crosses it,
 * append the cut-off note instead; past it, append nothing. Both keys expire
 * together, an hour after the last chunk — unless the operation has ended (outputEnded): a chunk
 * that arrives after the end does not give its stream the hour back.
 * KEYS: stream, counter. ARGV: budget, entry charge, ttl, maxlen, stream, offset, data, server, note,
 * data charge numerator, denominator, ended ttl.
 */
const APPEND = `
local charge = math.ceil(#ARGV[7] * tonumber(ARGV[10]) / tonumber(ARGV[11])) + tonumber(ARGV[2])
local total = redis.call('INCRBY', KEYS[2], charge)
local before = total - charge
local budget = tonumber(ARGV[1])
if total <= budget then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'stream', ARGV[5], 'offset', ARGV[6], 'data', ARGV[7], 'server', ARGV[8])
elseif before <= budget then
  redis.call('XADD', KEYS[1], '*', 'note', ARGV[9], 'cut_at', tostring(before))
end
for _, key in ipairs(KEYS) do
  local ttl = redis.call('TTL', key)
  if ttl < 0 or ttl > tonumber(ARGV[12]) then redis.call('EXPIRE', key, ARGV[3]) end
end
return total
`;

/** The operation's byte counter, next to its stream (same prefix, same TTL). */
function liveLogCounterKey(streamKey: string): string {
  return `${streamKey}:bytes`;
}

/**
 * Live output goes to a Redis stream per operation (for live logs), bounded in
 * bytes by Limits.liveLogMaxBytes (and in entries); the final capture (the
 * tail of each stream) is stored with the result in Postgres.
 * Secrets were masked by the runner before the chunk left the server.
 */
export async function appendOutput(ctx: DispatcherContext, serverId: string, chunk: OutputChunk): Promise<void> {
  // Dropped while Redis is unreachable: ioredis would queue it in this process's memory until Redis is back
  // (every chunk of every running command, up to 64 KiB each), and live output is best effort.
  if (ctx.redis.status !== "ready") return;
  const key = ctx.keys.operationLog(chunk.operationId);
  try {
    await ctx.redis.eval(
      APPEND,
      2,
      key,
      liveLogCounterKey(key),
      Limits.liveLogMaxBytes,
      ENTRY_CHARGE_BYTES,
      TTL_SECONDS,
      MAX_ENTRIES,
      chunk.stream,
      String(chunk.offset),
      chunk.data,
      serverId,
      CUT_OFF_NOTE,
      DATA_CHARGE_NUM,
      DATA_CHARGE_DEN,
      ENDED_TTL_SECONDS,
    );
  } catch (err) {
    ctx.logger.debug("could not append live output", { operationId: chunk.operationId, error: String(err) });
  }
}

/** The operation has ended: its stream (and its byte counter) expire ENDED_TTL_SECONDS from now; added to `multi`. */
export function outputEnded(ctx: DispatcherContext, operationId: string, multi: ChainableCommander): ChainableCommander {
  const key = ctx.keys.operationLog(operationId);
  return multi.expire(key, ENDED_TTL_SECONDS).expire(liveLogCounterKey(key), ENDED_TTL_SECONDS);
}
