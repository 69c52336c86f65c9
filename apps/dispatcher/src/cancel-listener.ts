import { createSubscriber, signForRunner } from "@runbridge/common";
import type { DispatcherContext, RunnerSocket } from "./context";
import { cancelReason, requestedCancelReason } from "./cancel-reason";
import { localSignatureTarget } from "./connection-keys";
import { localRunnerSocket } from "./runner-link";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A cancel can overtake the operation's start on its way to the runner: retry while it is still running. */
const RETRY_MS = 500;
const MAX_ATTEMPTS = 20;

/** Asks one runner socket to cancel; true when the runner had the process and is killing it. */
type Sender = (operationId: string, reason: string | undefined) => Promise<boolean>;

/**
 * Cancel requests from the gateway arrive on one pub/sub channel that every
 * dispatcher subscribes to; only the dispatcher holding the server's runner
 * socket locally sends `operation:cancel`, so a runner is told once. The runner
 * kills the process group (TERM, grace, KILL) and reports the result as
 * `cancelled` through the usual result path.
 *
 * The gateway also keeps each unconfirmed cancel in a per-server Redis set: a
 * runner that was disconnected when the cancel was sent gets it as soon as it
 * connects again, to whichever dispatcher.
 */
export function startCancelListener(ctx: DispatcherContext): { close: () => Promise<void> } {
  const sub = createSubscriber(ctx.config.REDIS_URL);
  sub.on("error", (err: Error) => ctx.logger.warn("cancel listener redis error", { error: err.message }));
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const senderOf =
    (socket: RunnerSocket): Sender =>
    async (operationId, reason) =>
      (await socket.timeout(ctx.config.RUNNER_ACK_TIMEOUT_MS).emitWithAck("operation:cancel", signForRunner(localSignatureTarget(socket), "operation:cancel", { operationId, ...(reason ? { reason } : {}) }))).ok;
  const localSender = (serverId: string): Sender | null => {
    // A runner still being admitted here (its older connections looked for, across dispatchers) is
    // in no room yet, and its scan of the pending set may have run before this cancel was added.
    const socket = localRunnerSocket(ctx, serverId) ?? connectingSocket(serverId);
    return socket ? senderOf(socket) : null;
  };
  const connectingSocket = (serverId: string): RunnerSocket | undefined => {
    for (const socket of ctx.io.of("/").sockets.values()) if (socket.connected && socket.data.serverId === serverId) return socket;
    return undefined;
  };

  const confirmed = (serverId: string, operationId: string) => ctx.redis.srem(ctx.keys.pendingCancels(serverId), operationId).catch(() => 0);

  const attempt = async (operationId: string, serverId: string, reason: string | undefined, send: () => Sender | null, n: number): Promise<void> => {
    if (closed) return;
    const sender = send();
    if (!sender) return; // Another dispatcher holds it (or no runner is connected: it gets it on reconnect).
    let ok = false;
    try {
      ok = await sender(operationId, reason);
    } catch (err) {
      ctx.logger.warn("runner did not acknowledge a cancel", { operationId, serverId, error: String(err) });
    }
    if (ok) {
      await confirmed(serverId, operationId);
      ctx.logger.info("cancel sent to runner", { operationId, serverId });
      return;
    }
    // The runner has no such process: it finished already, or its start is still on the way.
    const op = await ctx.prisma.operation.findUnique({ where: { id: operationId }, select: { status: true } });
    if (op?.status !== "running") {
      await confirmed(serverId, operationId);
      return;
    }
    if (n + 1 >= MAX_ATTEMPTS) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      void attempt(operationId, serverId, reason, send, n + 1).catch((err: unknown) => ctx.logger.warn("cancel retry failed", { operationId, error: String(err) }));
    }, RETRY_MS);
    timers.add(timer);
  };

  sub.on("message", (channel: string, message: string) => {
    if (channel !== ctx.keys.operationCancel) return;
    let req: { operationId?: unknown; serverId?: unknown; reason?: unknown };
    try {
      req = JSON.parse(message) as typeof req;
    } catch {
      return;
    }
    const { operationId, serverId } = req;
    if (typeof operationId !== "string" || typeof serverId !== "string" || !UUID.test(operationId) || !UUID.test(serverId)) return;
    void attempt(operationId, serverId, cancelReason(req.reason), () => localSender(serverId), 0).catch((err: unknown) => ctx.logger.warn("cancel failed", { operationId, error: String(err) }));
  });
  void sub.subscribe(ctx.keys.operationCancel).catch((err: unknown) => ctx.logger.error("could not subscribe to cancel requests", { error: String(err) }));

  /** Sends a runner the cancels of its server still waiting in the pending set. */
  const sendPending = (socket: RunnerSocket) => {
    const { serverId } = socket.data;
    const send = (): Sender | null => (socket.connected ? senderOf(socket) : null);
    void ctx.redis
      .smembers(ctx.keys.pendingCancels(serverId))
      .then((ids) => {
        for (const operationId of ids) {
          if (!UUID.test(operationId)) continue;
          // Only the id was kept: the reason is read back from the cancel request's audit event.
          void requestedCancelReason(ctx, operationId)
            .catch(() => undefined)
            .then((reason) => attempt(operationId, serverId, reason, send, 0))
            .catch((err: unknown) => ctx.logger.warn("cancel failed", { operationId, error: String(err) }));
        }
      })
      .catch((err: unknown) => ctx.logger.warn("could not read pending cancels", { serverId, error: String(err) }));
  };
  // A runner (re)connecting here gets the cancels it missed while away.
  ctx.io.on("connection", sendPending);
  // Cancels published while this subscription was down were never heard here: once it is back,
  // every runner connected here is sent its server's pending ones (those already sent are
  // harmless twice: the runner is already stopping that process, or has none).
  let subscribedOnce = false;
  sub.on("ready", () => {
    if (!subscribedOnce) {
      subscribedOnce = true;
      return;
    }
    for (const socket of ctx.io.of("/").sockets.values()) if (socket.connected) sendPending(socket);
  });

  return {
    close: async () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      sub.disconnect();
    },
  };
}
