import { FailureCause, FailureReason, encodeFinished, endingReason, isTerminal, storableText, type Ending, type OperationResult } from "@runbridge/contracts";
import type { FinishCondition, FinishFields, OperationNote } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { countOperationFinished } from "./metrics";
import { outputEnded } from "./output-log";

/**
 * Ends an operation. Postgres is the source of truth and the transition is
 * conditional (only from `running`), so a duplicate or late result — a runner
 * re-sending after a reconnect, a sweeper racing a runner — changes nothing.
 * Returns whether this call made the transition.
 */
export async function finishOperation(
  ctx: DispatcherContext,
  serverId: string,
  fields: FinishFields & Ending,
  opts: {
    /**
     * Which running operation it may end (default any): "undispatched", only one never handed to a runner
     * (so it cannot be running anywhere); "past-deadline", and only once its delivery deadline has passed,
     * as PostgreSQL reads it when it ends it; two more for a reboot's provider call (FinishCondition).
     */
    only?: FinishCondition;
    /** Recorded with the finish, in the same statement (e.g. the path a reboot took). */
    note?: OperationNote;
  } = {},
): Promise<boolean> {
  if (!isTerminal(fields.status)) throw new Error(`not a terminal status: ${fields.status}`);
  // Transition, audit event and deployment status in one statement (see OperationStore).
  const finished = await ctx.operations.finish(serverId, fields, opts.only ?? "running", opts.note);
  if (finished) {
    countOperationFinished(fields, finished.status, finished.type);
    // One round trip: the notification, the live log's shorter expiry now that it has ended, and a cancel still
    // waiting for the runner to confirm it, which no runner will now (it would wait for the server's next cancel).
    const notify = ctx.redis
      .multi()
      .publish(ctx.keys.operationFinished, encodeFinished(fields.operationId, finished))
      .srem(ctx.keys.pendingCancels(serverId), fields.operationId);
    await outputEnded(ctx, fields.operationId, notify)
      .exec()
      .catch((err: unknown) => {
        // Waiters also poll Postgres, so a lost notification only delays them.
        ctx.logger.warn("could not publish operation-finished (nor shorten its live log's expiry)", { operationId: fields.operationId, error: String(err) });
      });
    // The recorded status and exit code (a registry logout the platform failed is completed, 125/124), and why.
    ctx.logger.info("operation finished", { operationId: fields.operationId, status: finished.status, exitCode: finished.exitCode, reason: endingReason(fields) });
  }
  return finished !== null;
}

/**
 * Endings the platform gives an operation whose runner went quiet: its result may still come (the
 * runner keeps it in its ledger, e.g. across a token rotation or a long partition).
 */
const ENDED_WITHOUT_THE_RUNNER: readonly string[] = [
  FailureReason.RunnerLost,
  FailureReason.RunnerUnconfirmed,
  FailureReason.ResultLost,
  FailureReason.ResultOverdueUnanswered,
  FailureReason.ResultOverdueStillRunning,
];

/** Sanitised again: a result from an older runner may still carry U+0000, and refusing it would have it re-sent forever. */
export async function recordRunnerResult(ctx: DispatcherContext, serverId: string, r: OperationResult): Promise<boolean> {
  const ending: Ending = r.status === "failed" ? { status: r.status, cause: FailureCause.Runner } : { status: r.status };
  const finished = await finishOperation(ctx, serverId, {
    ...ending,
    operationId: r.operationId,
    exitCode: r.exitCode,
    stdout: storableText(r.stdout),
    stderr: storableText(r.stderr),
    stdoutTruncated: r.stdoutTruncated,
    stderrTruncated: r.stderrTruncated,
    durationMs: r.durationMs,
    startedAt: r.startedAt ? new Date(r.startedAt) : null,
    error: typeof r.error === "string" ? storableText(r.error) : null,
  });
  if (finished) return true;
  // Too late to end it: recorded beside the ending it has, so the audit trail says what really happened.
  const late = {
    status: r.status,
    exit_code: r.exitCode,
    duration_ms: r.durationMs,
    started_at: r.startedAt ?? null,
    stdout_bytes: Buffer.byteLength(r.stdout ?? "", "utf8"),
    stderr_bytes: Buffer.byteLength(r.stderr ?? "", "utf8"),
  };
  if (await ctx.operations.resultAfterEnd(serverId, r.operationId, ENDED_WITHOUT_THE_RUNNER, late)) {
    ctx.logger.warn("a runner's result arrived after its operation was ended without it; recorded as operation.result_after_end", {
      operationId: r.operationId,
      status: r.status,
      exitCode: r.exitCode,
    });
  }
  return false;
}
