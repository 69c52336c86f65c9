import { withRetries } from "@runbridge/common";
import { FailureCause, FailureReason, RebootPath } from "@runbridge/contracts";
import type { Operation, OperationNote } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { finishOperation } from "./results";

/** The path a reboot takes, and what the operation's params and audit trail say about it. */
export interface RebootDecision {
  path: RebootPath;
  reason: string;
  provider?: string;
  /** Provider path only: the result's stdout line. */
  detail?: string;
  /** Runner path after a failed provider call: the claim taken for the call is released. */
  release?: true;
  /** Provider path: the call may have been acted on but gave no definite answer; the operation fails, never handed to the runner. */
  unanswered?: true;
}

/** The params keys and the `operation.reboot_path` audit event of a decision. */
function noteOf(d: RebootDecision): OperationNote {
  return {
    params: {
      reboot_path: d.path,
      reboot_reason: d.reason,
      ...(d.provider ? { reboot_provider: d.provider } : {}),
      ...(d.detail ? { reboot_detail: d.detail } : {}),
    },
    event: { type: "operation.reboot_path", data: { path: d.path, reason: d.reason, provider: d.provider ?? null } },
  };
}

/** The decision a delivery recorded in the operation's params, read back by a later delivery. */
export function recordedDecision(params: Record<string, unknown>): RebootDecision | null {
  const path = params.reboot_path;
  if (path !== RebootPath.Provider && path !== RebootPath.Runner) return null;
  const text = (key: string) => (typeof params[key] === "string" ? (params[key] as string) : undefined);
  const provider = text("reboot_provider");
  const detail = text("reboot_detail");
  return { path, reason: text("reboot_reason") ?? "", ...(provider ? { provider } : {}), ...(detail ? { detail } : {}) };
}

/**
 * The runner path and its audit event, in one statement (releasing a provider call's claim), recorded once: false when
 * it ended meanwhile, or another delivery of it recorded its path or claimed a provider call first (a provider linked
 * after this one read the server): the reboot is then that delivery's, never also the runner's through this one.
 */
export function recordRunnerPath(ctx: DispatcherContext, op: Operation, d: RebootDecision): Promise<boolean> {
  return ctx.operations.noteRebootPath(op.id, noteOf(d), d.release ?? false);
}

/**
 * A reboot the provider accepted: the path, its audit event and the finish are one statement,
 * so no crash or database error between them can leave the provider path recorded on an
 * operation still running. Finishing again, e.g. from a redelivered job, changes nothing.
 * Only while it is claimed for the call with no path recorded, or with the provider path recorded:
 * false when it had ended already (or, which a claim rules out, the runner path was recorded).
 */
export function finishViaProvider(ctx: DispatcherContext, op: Operation, d: RebootDecision, durationMs = 0): Promise<boolean> {
  return finishOperation(
    ctx,
    op.serverId,
    { operationId: op.id, status: "completed", exitCode: 0, stdout: `${d.detail ?? ""}\n`, stderr: "", durationMs, startedAt: op.startedAt ?? new Date(ctx.clock.now() - durationMs) },
    { note: noteOf(d), only: "reboot-provider" },
  );
}

/**
 * A provider call whose outcome is unknown: failed with that reason and the path it took, never
 * handed to the runner. `error` says whether its answer was lost here or never definite. Only while
 * it is still claimed for the call with no path recorded: false when it ended, or when the delivery
 * that made the call recorded its outcome meanwhile (e.g. the runner path after a refused call).
 */
export function failOutcomeUnknown(
  ctx: DispatcherContext,
  op: Operation,
  d: RebootDecision,
  error: string = FailureReason.RebootOutcomeUnknown,
): Promise<boolean> {
  return finishOperation(ctx, op.serverId, { operationId: op.id, status: "failed", cause: FailureCause.RebootOutcomeUnknown, error }, { note: noteOf(d), only: "reboot-call-unanswered" });
}

/**
 * Pauses between attempts to store a provider call's outcome, about 8 s in all (a PostgreSQL
 * restart or failover): only this delivery attempt knows the outcome, and a later one would
 * have to fail the reboot as unknown.
 */
const STORE_RETRY_PAUSES_MS = [250, 500, 1000, 2000, 4000];

/** What the pauses of storeWithRetries add up to. */
export const STORE_RETRY_PAUSES_TOTAL_MS = STORE_RETRY_PAUSES_MS.reduce((sum, pause) => sum + pause, 0);

/**
 * What recording a provider's answer may take after the call (15 s): the pauses between tries of its write
 * (7.75 s), and the tries themselves (six of one short statement).
 */
export const PROVIDER_ANSWER_RECORD_MS = STORE_RETRY_PAUSES_TOTAL_MS + 7_250;

/** Runs `write` until it succeeds or the pauses are used up (then its last error is thrown). */
export function storeWithRetries<T>(ctx: DispatcherContext, op: Operation, write: () => Promise<T>): Promise<T> {
  return withRetries(write, {
    pauses: STORE_RETRY_PAUSES_MS,
    onRetry: (err, retryInMs) => ctx.logger.warn("could not record the reboot's outcome; retrying", { operationId: op.id, error: String(err), retryInMs }),
  });
}
