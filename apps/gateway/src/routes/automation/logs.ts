import { Router, type Response } from "express";
import { LOG_EVENT_ID, isTerminal, operationIdParamSchema, operationLogsQuerySchema } from "@runbridge/contracts";
import { createRedis } from "@runbridge/common";
import type { Operation } from "@runbridge/db";
import { type AutomationAuth, automationAuth } from "../../auth/locals";
import { assertOperationInScope } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { NotFoundError, RateLimitedError, ServiceUnavailableError, ValidationError } from "../../errors";
import { validateParam, validateQuery } from "../../middleware/validate";
import { watchKey } from "../../services/key-watch";
import { parseLogEntry } from "../../services/log-entry";
import { StreamSlots } from "../../services/stream-slots";
import { STARTED_OPERATION_PATHS } from "./paths";

const HEARTBEAT_MS = 15_000;
/** XREAD BLOCK bound: also how often the operation's status is re-read while it is quiet. */
const BLOCK_MS = 1000;
/**
 * After the operation ended, how long to keep reading for chunks still on their
 * way (the dispatcher appends output and stores the result independently), when
 * the byte offsets cannot prove the stream complete.
 */
const SETTLE_MS = 1500;
/**
 * Retry-After of a stream refused for being over the key's cap. A slot frees
 * when one of the key's streams ends, which nothing here can predict.
 */
const STREAMS_FULL_RETRY_SECONDS = 10;

type StreamName = "stdout" | "stderr";

/**
 * GET /operations/{id}/logs (extension): live output as Server-Sent Events.
 * Events `stdout`/`stderr` carry `{stream, offset, data}` with the Redis stream
 * entry id as `id:`, so a reconnecting client resumes after the last event it
 * got (`Last-Event-ID`, or `?last_event_id=` for clients that cannot set it).
 * One `cut_off` event marks where live output stopped at the live log's size
 * limit (the stored result then has the end of each stream).
 * Ends with `event: end` holding the final status, then the response closes.
 * When the live stream has expired (soon after the end), the stored capture from Postgres is
 * sent instead, with id `stored`.
 *
 * Each stream holds a Redis connection and re-reads the operation every
 * second, so one automation key may hold at most LOGS_MAX_STREAMS_PER_KEY of
 * them open on this process (more are refused with 429), and the process at
 * most LOGS_MAX_STREAMS (503), before any store is read. A stream's slot is given back when its handler returns, however it
 * ends (end of the operation, client gone, gateway draining, error).
 */
export function logsRouter(ctx: GatewayContext): Router {
  const router = Router();
  const slots = new StreamSlots(ctx.config.LOGS_MAX_STREAMS_PER_KEY, ctx.config.LOGS_MAX_STREAMS);
  router.get(STARTED_OPERATION_PATHS.logs, async (req, res) => {
    const auth = automationAuth(res);
    const notFound = () => new NotFoundError(`Operation ${String(req.params.operationId)} not found`);
    const id = validateParam<string>(operationIdParamSchema, req.params.operationId, notFound);
    const query = validateQuery(operationLogsQuerySchema, req.query);
    const header = req.get("last-event-id");
    if (header !== undefined && !LOG_EVENT_ID.test(header)) {
      throw new ValidationError('"Last-Event-ID" header must be an event id this API sent (like 1700000000000-0)');
    }
    const resumeFrom = header ?? query.last_event_id;
    const release = slots.acquire(auth.key.id);
    if (release === "key-full") {
      throw new RateLimitedError(
        `This API key already has ${slots.maxPerKey} live log streams open on this gateway (LOGS_MAX_STREAMS_PER_KEY); close one, or retry after the Retry-After header's seconds`,
        STREAMS_FULL_RETRY_SECONDS,
      );
    }
    if (release === "process-full") {
      // Not this key's doing: the gateway as a whole is at its limit (another replica may have room).
      throw new ServiceUnavailableError(
        `This gateway already has ${slots.maxTotal} live log streams open (LOGS_MAX_STREAMS); retry after the Retry-After header's seconds, or poll GET /operations/{id}`,
        STREAMS_FULL_RETRY_SECONDS,
      );
    }
    try {
      await serveLogs(ctx, res, auth, id, resumeFrom, notFound);
    } finally {
      release();
    }
  });
  return router;
}

/** Everything after the stream's slot is taken: the operation's checks, then the stream itself. */
async function serveLogs(
  ctx: GatewayContext,
  res: Response,
  auth: AutomationAuth,
  id: string,
  resumeFrom: string | undefined,
  notFound: () => Error,
): Promise<void> {
  const op = await ctx.operations.findForTenant(id, auth.tenantId);
  if (!op) throw notFound();
  // As for the status endpoint: only output of operations the key could have started.
  assertOperationInScope(auth.key, op);
  const logKey = ctx.keys.operationLog(op.id);
  // Read before the headers go out, so Redis being down is still a clean 503.
  const streamExists = (await ctx.redis.exists(logKey)) === 1;

  res.status(200).set({
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store, no-transform",
    // While draining the front door asks for Connection: close (the client then reconnects elsewhere): keep it.
    ...(ctx.draining.aborted ? {} : { Connection: "keep-alive" }),
    // Nginx and similar proxies would otherwise buffer the stream.
    "X-Accel-Buffering": "no",
  });
  res.flushHeaders();
  const sse = new SseWriter(res, ctx.config.LOGS_CLIENT_STALL_SECONDS * 1000);
  await sse.write("retry: 3000\n\n");
  // Not while a write waits for the client to read: it has not read what is already sent.
  const heartbeat = setInterval(() => {
    if (!sse.waiting) void sse.write(": keep-alive\n\n");
  }, HEARTBEAT_MS);
  try {
    if (!streamExists && isTerminal(op.status)) {
      if (resumeFrom !== "stored") await sendStored(sse, op);
      await sendEnd(sse, op);
      return;
    }
    // A stream could outlive its key's revocation, expiry or narrowed scope by as long as the
    // operation runs: it ends then, without `end`, and the client's reconnect gets the 401 or 403 that says why.
    const key = watchKey(ctx.keyServices.cache, auth.key, (now) => {
      if (!now.ipAllowed(auth.clientIp)) return false;
      try {
        assertOperationInScope(now.key, op);
        return true;
      } catch {
        return false;
      }
    });
    try {
      const final = await streamLive(ctx, sse, op.id, logKey, resumeFrom && resumeFrom !== "stored" ? resumeFrom : "0-0", key.signal);
      if (final) await sendEnd(sse, final);
    } finally {
      key.close();
    }
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}

/**
 * Writes SSE frames with backpressure; a gone client turns writes into no-ops. A client that does not
 * read enough for a waiting write to go out within `stallMs` (it stopped reading, or reads a trickle)
 * is cut off: it would hold the stream's slot, its Redis connection and this handler for as long as it
 * stays.
 */
class SseWriter {
  /** Writes waiting for the client to read (the stream's and a keep-alive's may both wait). */
  private pending = 0;

  get waiting(): boolean {
    return this.pending > 0;
  }
  /**
   * The client is gone. Set from the start if it left while the operation was
   * being looked up: its `close` has already fired, and a write would then wait
   * forever for a `drain` or `close` that never comes.
   */
  closed: boolean;

  constructor(
    private readonly res: Response,
    private readonly stallMs: number,
  ) {
    this.closed = res.destroyed;
    res.on("close", () => {
      this.closed = true;
    });
  }

  /** Runs `fn` when the client goes away (at once if it already has). */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.res.on("close", fn);
  }

  async write(text: string): Promise<void> {
    if (this.closed) return;
    if (this.res.write(text)) return;
    this.pending++;
    await new Promise<void>((resolve) => {
      const stalled = setTimeout(() => this.res.destroy(), this.stallMs);
      const done = () => {
        clearTimeout(stalled);
        this.res.off("drain", done);
        this.res.off("close", done);
        resolve();
      };
      this.res.on("drain", done);
      this.res.on("close", done);
    });
    this.pending--;
  }

  event(name: string, data: unknown, id?: string): Promise<void> {
    return this.write(`${id ? `id: ${id}\n` : ""}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  }
}

/**
 * Follows the operation's Redis stream with XREAD BLOCK on a connection of its
 * own (a blocking read would stall every other command on a shared one), until
 * the operation has ended and its output has been drained. Returns the final
 * row, or null if the client went away or this gateway is shutting down (the
 * stream then ends without `event: end`, and the client resumes elsewhere
 * from its last event id).
 */
async function streamLive(ctx: GatewayContext, sse: SseWriter, operationId: string, logKey: string, from: string, keyGone: AbortSignal): Promise<Operation | null> {
  // Named, so an operator (and the tests) can see how many SSE readers are open.
  // A read is answered within its BLOCK time: one unanswered well past it is a Redis (or a path to it) that
  // stalled, and the stream ends (the client resumes, or falls back to polling) rather than wait for good
  // while keep-alives tell the client all is well.
  const conn = createRedis(ctx.config.REDIS_URL, { maxRetriesPerRequest: 2, connectTimeout: 2000, commandTimeout: BLOCK_MS + 5000, connectionName: `${ctx.config.REDIS_PREFIX}:sse` });
  conn.on("error", () => undefined); // Surfaces as a rejected command below.
  // Interrupts a pending XREAD BLOCK at once when the client goes away, or the gateway begins to shut down.
  const stop = () => conn.disconnect();
  sse.onClose(stop);
  ctx.draining.addEventListener("abort", stop, { once: true });
  keyGone.addEventListener("abort", stop, { once: true });
  const ended = () => sse.closed || ctx.draining.aborted || keyGone.aborted;
  const seen: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  let lastId = from;
  let final: Operation | null = null;
  // Monotonic times (performance.now()): intervals only.
  let endedSeenAt = 0;
  let lastStatusCheck = -Infinity;
  /** The last read found nothing more: everything appended so far has been sent. */
  let drained = false;
  try {
    while (!ended()) {
      const proved = final !== null && provedComplete(final, seen);
      if (final && drained && (proved || performance.now() - endedSeenAt > SETTLE_MS)) return final;
      let reply: [string, [string, string[]][]][] | null;
      try {
        // Once the end is known and every byte is accounted for, one last read without blocking confirms the drain.
        reply = proved
          ? await conn.xread("COUNT", 500, "STREAMS", logKey, lastId)
          : await conn.xread("COUNT", 500, "BLOCK", final ? 250 : BLOCK_MS, "STREAMS", logKey, lastId);
      } catch (err) {
        if (ended()) return null;
        // Without `end`: the client resumes from its last event, here or on another gateway.
        ctx.logger.warn("live log stream ended: its Redis read failed", { operationId, error: String(err) });
        return null;
      }
      const entries = reply?.[0]?.[1] ?? [];
      drained = entries.length === 0;
      for (const [entryId, fields] of entries) {
        const { stream, offset, data, cutOff } = parseLogEntry(fields);
        lastId = entryId;
        if (cutOff) {
          // Nothing more comes live; the stored result has the end of each stream.
          await sse.event("cut_off", { note: cutOff.note, cut_at: cutOff.cutAt }, entryId);
          continue;
        }
        await sse.event(stream, { stream, offset, data }, entryId);
        seen[stream] = Math.max(seen[stream], offset + Buffer.byteLength(data));
      }
      if (!final && (entries.length === 0 || performance.now() - lastStatusCheck > BLOCK_MS)) {
        lastStatusCheck = performance.now();
        const row = await ctx.prisma.operation.findUniqueOrThrow({ where: { id: operationId } });
        if (isTerminal(row.status)) {
          final = row;
          endedSeenAt = performance.now();
        }
      }
    }
    return null;
  } finally {
    ctx.draining.removeEventListener("abort", stop);
    keyGone.removeEventListener("abort", stop);
    conn.disconnect();
  }
}

/** Every byte of the stored (untruncated) capture has been sent live. */
function provedComplete(op: Operation, seen: Record<StreamName, number>): boolean {
  if (op.stdoutTruncated || op.stderrTruncated) return false;
  return seen.stdout >= Buffer.byteLength(op.stdout ?? "") && seen.stderr >= Buffer.byteLength(op.stderr ?? "");
}

async function sendStored(sse: SseWriter, op: Operation): Promise<void> {
  for (const stream of ["stdout", "stderr"] as const) {
    const data = op[stream] ?? "";
    const truncated = stream === "stdout" ? op.stdoutTruncated : op.stderrTruncated;
    if (data) await sse.event(stream, { stream, offset: 0, data, stored: true, truncated }, "stored");
  }
}

function sendEnd(sse: SseWriter, op: Operation): Promise<void> {
  return sse.event("end", {
    operation_id: op.id,
    status: op.status,
    exit_code: op.exitCode,
    duration_ms: op.durationMs,
    error: op.error,
    stdout_truncated: op.stdoutTruncated,
    stderr_truncated: op.stderrTruncated,
  });
}
