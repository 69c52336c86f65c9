import { OperationStatus, cancelledOnRequest } from "@runbridge/contracts";
import type { Operation } from "@runbridge/db";
import type { AutomationAuth } from "../auth/locals";
import type { GatewayContext } from "../context";
import { countOperationFinished } from "../metrics";

/**
 * Cancelling an operation. Postgres is the source of truth: an operation no
 * dispatcher has handed to a runner yet is ended here, by a transition that is
 * conditional on `running` and `dispatched_at IS NULL` (the delivery worker marks
 * `dispatched_at` with the same condition on `running`, so exactly one of the two
 * wins and a cancelled operation is never delivered). A dispatched one is asked
 * to stop through the dispatchers (Redis pub/sub); its runner kills the process
 * tree and the result arrives as `cancelled`.
 */
export type CancelOutcome = "cancelled" | "requested";

/** Longer than any operation may run (900 s timeout) plus the runner's result grace. */
const PENDING_CANCEL_TTL_SECONDS = 24 * 3600;

export async function cancelOperation(ctx: GatewayContext, auth: AutomationAuth, op: Operation, reason: string | undefined): Promise<CancelOutcome> {
  const error = cancelledOnRequest(reason);
  // Recorded whatever follows: the request was made (the ending below, if it comes, is its own statement).
  await ctx.prisma.auditEvent.create({
    data: {
      tenantId: op.tenantId,
      type: "operation.cancel_requested",
      automationKeyId: auth.key.id,
      operationId: op.id,
      serverId: op.serverId,
      runId: op.runId,
      clientIp: auth.clientIp,
      data: { operation_type: op.type, reason: reason ?? null, dispatched: op.dispatchedAt !== null },
    },
  });
  // The ending every process writes (its operation.finished event and its deployment's status with it),
  // stamped by PostgreSQL's clock as every other time of the operation.
  const endedHere = (await ctx.operations.finish(op.serverId, { operationId: op.id, status: OperationStatus.Cancelled, error }, "undispatched")) !== null;
  if (endedHere) {
    countOperationFinished({ status: "cancelled" }, "cancelled", op.type);
    // Wakes anyone waiting on it (a held exec request, SSE clients poll anyway).
    await ctx.redis.publish(ctx.keys.operationFinished, op.id).catch(() => undefined);
    ctx.logger.info("operation cancelled before dispatch", { operationId: op.id });
    return "cancelled";
  }
  // Dispatched (or being dispatched right now): the dispatcher holding the runner's socket sends the cancel.
  // Also remembered per server until the runner confirms it, so a runner that is
  // disconnected right now gets it when it reconnects (to any dispatcher).
  const pending = ctx.keys.pendingCancels(op.serverId);
  const replies = await ctx.redis
    .multi()
    .sadd(pending, op.id)
    .expire(pending, PENDING_CANCEL_TTL_SECONDS)
    .publish(ctx.keys.operationCancel, JSON.stringify({ operationId: op.id, serverId: op.serverId, ...(reason ? { reason } : {}) }))
    .exec();
  const listeners = replies?.[2]?.[1];
  ctx.logger.info("operation cancel requested", { operationId: op.id, dispatchers: listeners });
  return "requested";
}
