import { FailureCause, FailureReason, runnerDeferredUntilDeadline } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";

/**
 * How long a runner's refusal-for-later is remembered: a few of the delivery job's once-a-second
 * attempts. A refusal older than that is not what kept the operation waiting at its deadline (the
 * runner has gone away since, and "runner offline" is then the truth).
 */
const DEFERRAL_MEMORY_MS = 5000;

/** Remembers why the runner asked for this operation later; best effort (a lost note only makes the deadline's failure read "runner offline"). */
export async function noteDeferral(ctx: DispatcherContext, operationId: string, why: string): Promise<void> {
  await ctx.redis.set(ctx.keys.operationDeferred(operationId), why.slice(0, 500), "PX", DEFERRAL_MEMORY_MS).catch(() => undefined);
}

/**
 * Why an operation never handed to a runner by its delivery deadline failed: its runner, connected,
 * kept refusing it for later, or no runner took it.
 */
export async function undeliveredEnding(ctx: DispatcherContext, operationId: string): Promise<{ cause: typeof FailureCause.RunnerDeferred | typeof FailureCause.RunnerOffline; error: string }> {
  const why = await ctx.redis.get(ctx.keys.operationDeferred(operationId)).catch(() => null);
  return why === null ? { cause: FailureCause.RunnerOffline, error: FailureReason.RunnerOffline } : { cause: FailureCause.RunnerDeferred, error: runnerDeferredUntilDeadline(why) };
}
