import { createRedis } from "@runbridge/common";
import { serverRoom, type DispatcherContext } from "./context";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A cancel can overtake the operation's start on its way to the runner: retry while it is still running. */
const RETRY_MS = 500;
const MAX_ATTEMPTS = 20;

/**
 * Cancel requests from the gateway arrive on one pub/sub channel that every
 * dispatcher subscribes to; only the dispatcher holding the server's runner
 * socket locally sends `operation:cancel`, so a runner is told once. The runner
 * kills the process group (TERM, grace, KILL) and reports the result as
 * `cancelled` through the usual result path.
 */
export function startCancelListener(ctx: DispatcherContext): { close: () => Promise<void> } {
  const sub = createRedis(ctx.config.REDIS_URL);
  sub.on("error", (err: Error) => ctx.logger.warn("cancel listener redis error", { error: err.message }));
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const localSocket = (serverId: string) => {
    const nsp = ctx.io.of("/");
    const id = [...(nsp.adapter.rooms.get(serverRoom(serverId)) ?? [])][0];
    return id ? nsp.sockets.get(id) : undefined;
  };

  const attempt = async (operationId: string, serverId: string, n: number): Promise<void> => {
    if (closed) return;
    const socket = localSocket(serverId);
    if (!socket) return; // Another dispatcher holds it (or no runner is connected).
    let ok = false;
    try {
      ok = (await socket.timeout(ctx.config.RUNNER_ACK_TIMEOUT_MS).emitWithAck("operation:cancel", { operationId })).ok;
    } catch (err) {
      ctx.logger.warn("runner did not acknowledge a cancel", { operationId, serverId, error: String(err) });
    }
    if (ok) {
      ctx.logger.info("cancel sent to runner", { operationId, serverId });
      return;
    }
    // The runner has no such process: it finished already, or its start is still on the way.
    const op = await ctx.prisma.operation.findUnique({ where: { id: operationId }, select: { status: true } });
    if (op?.status !== "running" || n + 1 >= MAX_ATTEMPTS) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      void attempt(operationId, serverId, n + 1).catch((err: unknown) => ctx.logger.warn("cancel retry failed", { operationId, error: String(err) }));
    }, RETRY_MS);
    timers.add(timer);
  };

  sub.on("message", (channel: string, message: string) => {
    if (channel !== ctx.keys.operationCancel) return;
    let req: { operationId?: unknown; serverId?: unknown };
    try {
      req = JSON.parse(message) as typeof req;
    } catch {
      return;
    }
    const { operationId, serverId } = req;
    if (typeof operationId !== "string" || typeof serverId !== "string" || !UUID.test(operationId) || !UUID.test(serverId)) return;
    void attempt(operationId, serverId, 0).catch((err: unknown) => ctx.logger.warn("cancel failed", { operationId, error: String(err) }));
  });
  void sub.subscribe(ctx.keys.operationCancel).catch((err: unknown) => ctx.logger.error("could not subscribe to cancel requests", { error: String(err) }));

  return {
    close: async () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      sub.disconnect();
    },
  };
}
