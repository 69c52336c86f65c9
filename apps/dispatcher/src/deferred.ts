import { FailureCause, FailureReason, runnerDeferredUntilDeadline } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";
import { finishOperation } from "./results";

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
 * Remembers that a delivery of this operation was held back for an unanswering runner until it comes
 * round again (`forMs`), and a little beyond; best effort, as noteDeferral.
 */
export async function noteHeldBack(ctx: DispatcherContext, operationId: string, forMs: number): Promise<void> {
  // Whole milliseconds: Redis refuses a fractional PX, and delays reckoned from the clock's reading are fractional.
  await ctx.redis.set(ctx.keys.operationHeldBack(operationId), "1", "PX", Math.ceil(forMs) + DEFERRAL_MEMORY_MS).catch(() => undefined);
}

/**
 * How long a delivery's finding that the runner is away is remembered: longer than the others, since
 * a job retried every second may wait in a backed-up queue between its attempts.
 */
const AWAY_MEMORY_MS = 15_000;

/** Remembers that a delivery of this operation found its runner away; best effort (a lost note makes the deadline's failure read "not delivered"). */
export async function noteRunnerAway(ctx: DispatcherContext, operationId: string): Promise<void> {
  await ctx.redis.set(ctx.keys.operationRunnerAway(operationId), "1", "PX", AWAY_MEMORY_MS).catch(() => undefined);
}

/**
 * How far past now a busy runner's refusal moves the delivery deadline: many of its attempts (every
 * 2 s), and more than a spell of the runner not answering (the ack time-out and the delivery gate's
 * longest pause), so that a short freeze does not fail the whole line; yet the operation still fails
 * as runner offline, as any would, should the runner go away.
 */
const BUSY_HOLD_SECONDS = 30;
/** The deadline is moved only once it is this close: not a write at every one of the refusals, every 2 s. */
const BUSY_HOLD_REFRESH_SECONDS = 15;

/**
 * The runner refused it for now because it runs as many operations as it may: it takes it once one
 * ends, so the operation waits — its delivery deadline moves forward, as a deploy's does while it
 * waits its turn — rather than fail at its deadline while its runner is there and working. Not a
 * queue: whichever waiting operation is offered next after a place frees takes it.
 * Bounded by RUNNER_BUSY_WAIT_MAX_SECONDS after its acceptance, so that a runner that never frees a
 * place (results no dispatcher stores) cannot keep operations waiting for good. Only an undispatched
 * row moves (the refused claim was taken back), and never backwards.
 */
export async function holdForBusyRunner(ctx: DispatcherContext, operationId: string): Promise<void> {
  const max = ctx.config.RUNNER_BUSY_WAIT_MAX_SECONDS;
  await ctx.prisma.$executeRaw`
    UPDATE operations SET deliver_by = LEAST(now() + make_interval(secs => ${BUSY_HOLD_SECONDS}::integer), created_at + make_interval(secs => ${max}::integer))
    WHERE id = ${operationId}::uuid AND status = 'running' AND dispatched_at IS NULL
      AND deliver_by < LEAST(now() + make_interval(secs => ${BUSY_HOLD_REFRESH_SECONDS}::integer), created_at + make_interval(secs => ${max}::integer))`;
}

type RunnerSideCause = typeof FailureCause.RunnerDeferred | typeof FailureCause.RunnerUnresponsive | typeof FailureCause.RunnerOffline;
type Undelivered<C> = { cause: C; error: string };

/**
 * Why an operation never handed to a runner by its delivery deadline failed: its runner, connected,
 * kept refusing it for later, or left its deliveries unanswered, or was not there when a delivery
 * looked for it. With `neverAskedIsBacklog` (the delivery worker, and the sweeper for a job still
 * waiting in the queue), an operation none of whose deliveries reached the point of looking for its
 * runner — its job waited in the queue (dispatchers stopped, paused or behind), or every attempt
 * failed before it (a store unreachable) — fails as not delivered, queue_backlog: blaming the runner
 * would send the operator to the wrong machine. Without it (a job the queue lost), runner offline,
 * as before any of these notes existed.
 */
export async function undeliveredEnding(ctx: DispatcherContext, operationId: string): Promise<Undelivered<RunnerSideCause>>;
export async function undeliveredEnding(ctx: DispatcherContext, operationId: string, neverAskedIsBacklog: boolean): Promise<Undelivered<RunnerSideCause | typeof FailureCause.QueueBacklog>>;
export async function undeliveredEnding(ctx: DispatcherContext, operationId: string, neverAskedIsBacklog = false): Promise<Undelivered<RunnerSideCause | typeof FailureCause.QueueBacklog>> {
  const [why, heldBack, away] = await Promise.all([
    ctx.redis.get(ctx.keys.operationDeferred(operationId)).catch(() => null),
    ctx.redis.exists(ctx.keys.operationHeldBack(operationId)).catch(() => 0),
    ctx.redis.exists(ctx.keys.operationRunnerAway(operationId)).catch(() => 1),
  ]);
  if (why !== null) return { cause: FailureCause.RunnerDeferred, error: runnerDeferredUntilDeadline(why) };
  if (heldBack > 0) return { cause: FailureCause.RunnerUnresponsive, error: FailureReason.RunnerUnresponsive };
  if (neverAskedIsBacklog && away === 0) return { cause: FailureCause.QueueBacklog, error: FailureReason.QueueBacklog };
  return { cause: FailureCause.RunnerOffline, error: FailureReason.RunnerOffline };
}

/**
 * Ends an operation never handed to a runner whose delivery deadline has passed — as PostgreSQL reads it
 * when it ends it, so that a deadline moved forward meanwhile (a deploy waiting its turn) keeps it — saying
 * why (undeliveredEnding, queue_backlog when no delivery looked for its runner). The delivery worker, at the
 * job's turn, and the sweeper, for a job left waiting in the queue, end it alike. `ended`: whether it was
 * ended here.
 */
export async function endUndelivered(
  ctx: DispatcherContext,
  op: { id: string; serverId: string; createdAt: Date },
  logFields: Record<string, unknown> = {},
): Promise<{ ending: Undelivered<RunnerSideCause | typeof FailureCause.QueueBacklog>; ended: boolean }> {
  const ending = await undeliveredEnding(ctx, op.id, true);
  const ended = await finishOperation(ctx, op.serverId, { operationId: op.id, status: "failed", ...ending }, { only: "past-deadline" });
  if (ended && ending.cause === FailureCause.QueueBacklog) {
    ctx.logger.warn("operation failed undelivered: no delivery of it looked for its runner before its delivery deadline (its job waited in the queue: dispatchers stopped, paused or behind)", {
      operationId: op.id,
      serverId: op.serverId,
      waitedMs: Math.max(0, ctx.clock.now() - op.createdAt.getTime()),
      ...logFields,
    });
  }
  return { ending, ended };
}

