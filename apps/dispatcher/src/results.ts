import { isTerminal, type OperationResult, type TerminalStatus } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";
import { countOperationFinished } from "./metrics";

const FINISHED_LOG_TTL_SECONDS = 3600;

/**
 * Ends an operation. Postgres is the source of truth and the transition is
 * conditional (only from `running`), so a duplicate or late result — a runner
 * re-sending after a reconnect, a sweeper racing a runner — changes nothing.
 * Returns whether this call made the transition.
 */
export async function finishOperation(
  ctx: DispatcherContext,
  serverId: string,
  fields: {
    operationId: string;
    status: TerminalStatus;
    exitCode?: number | null;
    stdout?: string;
    stderr?: string;
    stdoutTruncated?: boolean;
    stderrTruncated?: boolean;
    durationMs?: number | null;
    startedAt?: Date | null;
    error?: string | null;
  },
  /** Only end it if it was never handed to a runner (so it cannot be running anywhere). */
  opts: { onlyIfUndispatched?: boolean } = {},
): Promise<boolean> {
  if (!isTerminal(fields.status)) throw new Error(`not a terminal status: ${fields.status}`);
  const now = new Date();
  let finishedType = "unknown";
  const changed = await ctx.prisma.$transaction(async (tx) => {
    const { count } = await tx.operation.updateMany({
      where: { id: fields.operationId, serverId, status: "running", ...(opts.onlyIfUndispatched ? { dispatchedAt: null } : {}) },
      data: {
        status: fields.status,
        exitCode: fields.exitCode ?? null,
        stdout: fields.stdout ?? "",
        stderr: fields.stderr ?? "",
        stdoutTruncated: fields.stdoutTruncated ?? false,
        stderrTruncated: fields.stderrTruncated ?? false,
        durationMs: fields.durationMs ?? null,
        error: fields.error ?? null,
        completedAt: now,
        ...(fields.startedAt ? { startedAt: fields.startedAt } : {}),
      },
    });
    if (count === 0) return false;
    const op = await tx.operation.findUniqueOrThrow({ where: { id: fields.operationId } });
    finishedType = op.type;
    await tx.auditEvent.create({
      data: {
        tenantId: op.tenantId,
        type: "operation.finished",
        automationKeyId: op.automationKeyId,
        operationId: op.id,
        serverId: op.serverId,
        runId: op.runId,
        data: {
          operation_type: op.type,
          status: op.status,
          exit_code: op.exitCode,
          duration_ms: op.durationMs,
          error: op.error,
          stdout_bytes: Buffer.byteLength(op.stdout ?? ""),
          stderr_bytes: Buffer.byteLength(op.stderr ?? ""),
        },
      },
    });
    await tx.deployment.updateMany({ where: { operationId: op.id }, data: { status: op.status, completedAt: now } });
    return true;
  });
  if (changed) {
    countOperationFinished(fields.status, finishedType);
    await ctx.redis.publish(ctx.keys.operationFinished, fields.operationId).catch((err: unknown) => {
      // Waiters also poll Postgres, so a lost notification only delays them.
      ctx.logger.warn("could not publish operation-finished", { operationId: fields.operationId, error: String(err) });
    });
    // Live output of a finished operation is also in Postgres: keep the stream only briefly for late readers.
    await ctx.redis.expire(ctx.keys.operationLog(fields.operationId), FINISHED_LOG_TTL_SECONDS).catch(() => undefined);
    ctx.logger.info("operation finished", { operationId: fields.operationId, status: fields.status, exitCode: fields.exitCode ?? null });
  }
  return changed;
}

export async function recordRunnerResult(ctx: DispatcherContext, serverId: string, r: OperationResult): Promise<boolean> {
  return finishOperation(ctx, serverId, {
    operationId: r.operationId,
    status: r.status,
    exitCode: r.exitCode,
    stdout: r.stdout,
    stderr: r.stderr,
    stdoutTruncated: r.stdoutTruncated,
    stderrTruncated: r.stderrTruncated,
    durationMs: r.durationMs,
    startedAt: r.startedAt ? new Date(r.startedAt) : null,
    error: r.error ?? null,
  });
}
