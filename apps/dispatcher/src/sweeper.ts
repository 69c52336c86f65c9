import { Queue } from "bullmq";
import { FailureCause, FailureReason, JobCatalog, JobName, QueueName, RESULT_DUE_AFTER_TIMEOUT_MS, type DeliverOperationJob, type LedgerQueryReply, type OperationType } from "@runbridge/contracts";
import { createRedis } from "@runbridge/common";
import { Prisma } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { countSweeperAction, type SweeperAction } from "./metrics";
import { endUndelivered, undeliveredEnding } from "./deferred";
import { deployTurn } from "./deploy-turn";
import { recordRunnerResult, finishOperation } from "./results";
import { RunnerSilent } from "./relay";
import { RunnerNotConnected, requestRunner } from "./runner-link";

/**
 * When an operation's time-out starts counting, for the overdue sweep: its start, as the runner
 * stamped it, but never before it was handed over (dispatched_at, by PostgreSQL's clock) — a runner
 * whose clock is behind stamps starts in the past, and its operations would look overdue early and
 * end as runner lost at its next brief disconnect. Not started: from the handover, or from the
 * delivery deadline, until which a start may still be sitting in the runner's socket.
 */
const OVERDUE_FROM = Prisma.sql`CASE WHEN started_at IS NULL THEN GREATEST(dispatched_at, deliver_by) ELSE GREATEST(started_at, dispatched_at) END`;

/**
 * Past its overdue mark (timeout + RESULT_GRACE_SECONDS), how long a connected runner is still given to have
 * an operation's result: every grace a runner may take past a timeout (RESULT_DUE_AFTER_TIMEOUT_MS: the longest
 * kill grace, the wait for a command that outlives SIGKILL, the last read of its output, one send of its
 * result). Beyond it, a runner that still says "running", or does not answer, will not deliver it.
 */
const RESULT_DUE_AFTER_OVERDUE_SECONDS = Math.ceil(RESULT_DUE_AFTER_TIMEOUT_MS / 1000);

/** Undelivered operations looked at per pass (each costs a look at its job in Redis). */
const UNDELIVERED_BATCH = 500;

/**
 * How long past its delivery deadline an operation whose job still waits in the queue is left to the
 * worker that takes the job (it ends it then, saying why): beyond it, no worker is taking it (the
 * queue paused, or a backlog too long), and the sweeper ends it, so that the client polling it is not
 * told "running" for as long as the queue stays stuck.
 */
const QUEUED_PAST_DEADLINE_GRACE_MS = 10_000;
/** Job states in which a job waits for a worker (a paused queue's jobs read "waiting"). */
const QUEUED_STATES: ReadonlySet<string> = new Set(["waiting", "prioritized", "delayed"]);

/**
 * Guarantees every accepted operation reaches a terminal state, whatever was
 * lost on the way (a job, a result, a runner). Every dispatcher runs it; all
 * its writes are conditional transitions, so concurrent sweeps are harmless.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | null = null;
  /** Each kind of pass under way (at most one of each), which stop() waits for. */
  private readonly passes = new Map<"undelivered" | "overdue", Promise<void>>();
  private stopping = false;
  /**
   * Servers left alone until a moment (monotonic): one whose connected runner did not answer a ledger query,
   * or whose runner is away within its RUNNER_LOST_GRACE_SECONDS — asked about at every sweep, the rows of
   * either would fill the oldest-overdue batch and hold back other servers' operations.
   */
  private readonly silentUntil = new Map<string, number>();
  /**
   * Operations whose runner answered "running" although their result is overdue (a long kill grace, or stuck):
   * left alone until `askAgainAt` (a few sweeps on, or their give-up moment if sooner: should their runner go
   * away meanwhile, they end as runner lost), and until `forgetAt` (past their give-up moment, by when they have
   * ended) taken into the batch only after the overdue operations not asked about yet. Asked about at every
   * sweep, oldest first, 200 such rows held the whole batch, and every other server's overdue operations waited.
   */
  private readonly answeredRunning = new Map<string, { askAgainAt: number; forgetAt: number }>();
  private readonly queue: Queue<DeliverOperationJob>;
  /**
   * Where the last look at undelivered operations stopped when it filled its batch: the next one
   * starts after it. From the oldest every time, operations that merely wait (for a runner that is
   * away, a deploy for its turn) could fill every batch, and a lost job behind them would never be
   * re-enqueued — it would end as runner offline.
   */
  private undeliveredAfter: { createdAt: Date; id: string } | null = null;

  constructor(private readonly ctx: DispatcherContext) {
    const connection = createRedis(ctx.config.REDIS_URL);
    connection.on("error", (err: Error) => ctx.logger.debug("sweeper redis error", { error: err.message }));
    this.queue = new Queue(QueueName.Operations, { connection, prefix: ctx.keys.bull });
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.ctx.config.SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.stopping = true;
    // A pass under way finishes first: once this dispatcher has disconnected its runners (the next
    // step of the shutdown), a pass still asking them would find them gone and fail their operations.
    await Promise.all(this.passes.values());
    await this.queue.close().catch(() => undefined);
  }

  /**
   * The two recoveries run independently, each at most once at a time: asking
   * slow runners about overdue results must never hold back the re-enqueueing
   * of lost jobs.
   */
  async sweep(): Promise<void> {
    await Promise.all([this.exclusively("undelivered", () => this.recoverUndelivered()), this.exclusively("overdue", () => this.resolveOverdue())]);
  }

  private async exclusively(pass: "undelivered" | "overdue", run: () => Promise<void>): Promise<void> {
    if (this.passes.has(pass) || this.stopping) return;
    const done = run()
      .catch((err: unknown) => {
        this.ctx.logger.warn("sweep failed", { pass, error: String(err) });
      })
      .finally(() => this.passes.delete(pass));
    this.passes.set(pass, done);
    await done;
  }

  /**
   * Operations never handed to a runner. Normally their job is in the queue and
   * the worker handles them; if the job is gone (Redis restarted without
   * persistence, flushed, failed over) they are re-enqueued from Postgres — or,
   * when their secret inputs travelled only in the lost job, ended as failed
   * with the reason, since running them without those inputs would be wrong.
   */
  private async recoverUndelivered(): Promise<void> {
    // PostgreSQL's clock, which wrote created_at and deliver_by: this host's may be off, and one ahead
    // would take an operation whose gateway has not enqueued it yet for one whose job was lost.
    const [clock] = await this.ctx.prisma.$queryRaw<{ now: Date }[]>`SELECT now() AS now`;
    const now = clock?.now.getTime() ?? Date.now();
    const cutoff = new Date(now - this.ctx.config.REQUEUE_AFTER_SECONDS * 1000);
    const after = this.undeliveredAfter;
    const ops = await this.ctx.prisma.operation.findMany({
      where: {
        status: "running",
        dispatchedAt: null,
        // A start reported with no mark (a refused claim released before an earlier start reached the runner, on a
        // release before the runner's report re-marked it) is the overdue pass's: it runs, its job is not lost.
        startedAt: null,
        createdAt: { lt: cutoff },
        AND: [
          // Only this deployment's: another one sharing the database keeps its jobs in its own queue.
          { OR: [{ redisPrefix: this.ctx.config.REDIS_PREFIX }, { redisPrefix: null }] },
          ...(after ? [{ OR: [{ createdAt: { gt: after.createdAt } }, { createdAt: after.createdAt, id: { gt: after.id } }] }] : []),
        ],
      },
      select: { id: true, serverId: true, type: true, envKeys: true, deliverBy: true, createdAt: true },
      orderBy: [{ createdAt: "asc" }, { id: "asc" }],
      take: UNDELIVERED_BATCH,
    });
    const last = ops.at(-1);
    this.undeliveredAfter = ops.length === UNDELIVERED_BATCH && last ? { createdAt: last.createdAt, id: last.id } : null;
    for (const op of ops) {
      // "unknown" is a job that no longer exists, or whose hash is left in no state list (a list
      // lost to eviction): either way nothing will deliver it.
      const state = await this.queue.getJobState(op.id);
      if (QUEUED_STATES.has(state)) {
        if (op.deliverBy.getTime() + QUEUED_PAST_DEADLINE_GRACE_MS < now) await this.endQueuedPastDeadline(op);
        continue;
      }
      if (state !== "unknown" && state !== "failed" && state !== "completed") continue;
      // Read again: its job may have been delivered since the list above was read (a delivery marks the
      // row dispatched before its job completes), and it would be delivered, and counted, a second time.
      const still = await this.ctx.prisma.operation.count({ where: { id: op.id, status: "running", dispatchedAt: null } });
      if (still === 0) continue;
      const failUndispatched = async (error: string, action: SweeperAction & FailureCause) => {
        if (await finishOperation(this.ctx, op.serverId, { operationId: op.id, status: "failed", cause: action, error }, { only: "undispatched" })) countSweeperAction(action);
      };
      if (op.deliverBy.getTime() < now) {
        const ending = await undeliveredEnding(this.ctx, op.id);
        await failUndispatched(ending.error, ending.cause);
      } else if (op.type === "deploy" && !(await this.ctx.prisma.deployment.findUnique({ where: { operationId: op.id }, select: { id: true } }))) {
        // The gateway failed between the operation and its deployment row: with no row the
        // deploy cannot wait its turn behind the application's other deploys (deploy-turn.ts).
        await failUndispatched(FailureReason.DeploymentNotRecorded, "deployment_not_recorded");
      } else if ((await this.ctx.redis.exists(this.ctx.keys.operationUnconfirmed(op.id))) > 0) {
        // Never queued: its gateway's insert went unconfirmed, and its client was told it was not started (or to look it up).
        await failUndispatched(FailureReason.NotConfirmed, "not_confirmed");
      } else if (hadSecrets(op)) {
        await failUndispatched(FailureReason.QueueLost, "queue_lost");
      } else {
        // An orphaned hash would make the add below a no-op (same job id): remove whatever is left.
        await this.queue.remove(op.id).catch(() => undefined);
        const entry = JobCatalog[JobName.DeliverOperation];
        await this.queue.add(JobName.DeliverOperation, { operationId: op.id, serverId: op.serverId, type: op.type as OperationType }, { ...entry.options, jobId: op.id });
        countSweeperAction("requeued");
        this.ctx.logger.warn("re-enqueued an operation whose job was lost", { operationId: op.id });
      }
    }
  }

  /**
   * An undelivered operation well past its delivery deadline whose job still waits for a worker: no
   * runner can be handed it any more (a claim needs the deadline ahead), so it ends as the worker taking
   * the job would end it, saying why (queue_backlog when no delivery ever looked for its runner), and its
   * job is removed, not left for a worker to find ended. A deploy still waiting its turn is left alone: the
   * worker moves its deadline forward when it comes round (deploy-turn.ts), as after an outage that kept
   * every worker from doing so in time. Ended only if its deadline is still past as PostgreSQL ends it.
   */
  private async endQueuedPastDeadline(op: { id: string; serverId: string; type: string; createdAt: Date }): Promise<void> {
    if (op.type === "deploy" && (await deployTurn(this.ctx, op)).kind === "later") return;
    const { ending, ended } = await endUndelivered(this.ctx, op, { jobState: "still queued" });
    if (!ended) return;
    countSweeperAction(ending.cause);
    // Only once it has ended here: a job whose operation a delivery took meanwhile is its delivery's to retry. A
    // worker that holds it by now (it then finds the operation ended) keeps it: BullMQ refuses to remove a locked job.
    await this.queue.remove(op.id).catch(() => undefined);
  }

  /**
   * Handed to a runner, and its result is overdue: ask the runner's ledger, or give up on it.
   * Overdue counts from the start the runner reported, or else from the latest moment a start
   * could still have reached it: a runner takes a start until its delivery deadline
   * (`notAfter`, the row's deliver_by, plus its clock tolerance, which RESULT_GRACE_SECONDS
   * must exceed). Counted from the hand-over alone, an operation sent to a runner frozen for
   * a while was failed as lost, then run once the runner woke and read the start.
   * A few servers are asked at a time, oldest overdue first, and nothing more is asked once the
   * sweep's time budget is spent;
   * a runner that is connected but did not answer is left alone for a while, so that the
   * oldest overdue rows of silent runners do not take every sweep's turn, and so is an operation
   * its runner answered "running" for. Neither is left so for ever: once past its timeout and
   * every grace a runner may take after it (RESULT_DUE_AFTER_OVERDUE_SECONDS past its overdue mark),
   * an operation whose connected runner still does not answer, or still answers "running", is
   * ended as result overdue.
   */
  private async resolveOverdue(): Promise<void> {
    const grace = this.ctx.config.RESULT_GRACE_SECONDS;
    // Intervals on the monotonic clock (as silentUntil): setting the wall clock must not stretch or skip them.
    const now = performance.now();
    for (const [serverId, until] of this.silentUntil) if (until <= now) this.silentUntil.delete(serverId);
    for (const [id, { forgetAt }] of this.answeredRunning) if (forgetAt <= now) this.answeredRunning.delete(id);
    const silent = [...this.silentUntil.keys()];
    const askedBefore = [...this.answeredRunning.keys()];
    const leftAlone = [...this.answeredRunning].filter(([, { askAgainAt }]) => askAgainAt > now).map(([id]) => id);
    // Oldest overdue first, but taken in turns across servers (each server's oldest, then each one's second...), and
    // the ones their runner answered "running" for (until their give-up moment) after the others: neither one
    // server's rows nor rows whose runner keeps them running fill the batch ahead of everything else.
    const overdue = await this.ctx.prisma.$queryRaw<OverdueRow[]>`
      WITH overdue AS (
        SELECT id, server_id, started_at, (type = 'reboot' AND NOT (params ? 'reboot_path')) AS provider_call_unrecorded,
               ${OVERDUE_FROM} + make_interval(secs => timeout_seconds + ${grace}) AS overdue_at,
               ${OVERDUE_FROM} + make_interval(secs => timeout_seconds + ${grace} + ${this.ctx.config.RUNNER_LOST_GRACE_SECONDS}) < now() AS past_lost_grace,
               (extract(epoch FROM ${OVERDUE_FROM} + make_interval(secs => timeout_seconds + ${grace} + ${RESULT_DUE_AFTER_OVERDUE_SECONDS}) - now()) * 1000)::float8 AS give_up_in_ms,
               id::text = ANY(${askedBefore}::text[]) AS answered_running
        FROM operations
        WHERE status = 'running' AND (dispatched_at IS NOT NULL OR started_at IS NOT NULL)
          AND (redis_prefix = ${this.ctx.config.REDIS_PREFIX} OR redis_prefix IS NULL)
          AND ${OVERDUE_FROM} + make_interval(secs => timeout_seconds + ${grace}) < now()
          AND NOT (server_id::text = ANY(${silent}::text[]))
          AND NOT (id::text = ANY(${leftAlone}::text[]))
      ), turns AS (
        SELECT *, answered_running AND give_up_in_ms > 0 AS later,
               row_number() OVER (PARTITION BY server_id ORDER BY answered_running AND give_up_in_ms > 0, overdue_at, id) AS turn
        FROM overdue
      )
      SELECT id, server_id, started_at, provider_call_unrecorded, past_lost_grace, give_up_in_ms
      FROM turns
      ORDER BY later, turn, overdue_at, id
      LIMIT ${OVERDUE_PER_SWEEP}`;
    const byServer = new Map<string, OverdueRow[]>();
    for (const op of overdue) byServer.set(op.server_id, [...(byServer.get(op.server_id) ?? []), op]);
    // Servers in the order the batch first names them (Map keeps insertion order): each one's oldest overdue operation
    // in turn, those already answered "running" last.
    const pending = [...byServer.entries()];
    const budgetEnds = now + Math.max(this.ctx.config.RUNNER_ACK_TIMEOUT_MS, this.ctx.config.SWEEP_INTERVAL_MS);
    const worker = async (): Promise<void> => {
      for (let next = pending.shift(); next && performance.now() < budgetEnds && !this.stopping; next = pending.shift()) {
        await this.resolveServer(next[0], next[1], budgetEnds).catch((err: unknown) =>
          this.ctx.logger.warn("could not resolve overdue operations", { serverId: next?.[0], error: String(err) }),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(LEDGER_QUERY_CONCURRENCY, pending.length) }, worker));
  }

  /**
   * One server's overdue operations, one ledger query each: a reply carries whole results (up
   * to ~3 MiB each), and two in one message could pass the socket's size limit and cut the
   * runner off.
   */
  private async resolveServer(serverId: string, all: OverdueRow[], budgetEnds: number): Promise<void> {
    // A reboot claimed for a cloud provider call whose answer was never recorded (its dispatcher died and the job was
    // lost with Redis, or the call outlasted this window): the provider may have rebooted it, whatever the runner says.
    const ops: OverdueRow[] = [];
    for (const op of all) {
      if (!op.provider_call_unrecorded) {
        ops.push(op);
        continue;
      }
      const ending = { operationId: op.id, status: "failed" as const, cause: FailureCause.RebootOutcomeUnknown, error: FailureReason.RebootOutcomeUnknown };
      // Only while still so: the delivery making the call may have recorded its outcome since this sweep read the row.
      if (await finishOperation(this.ctx, serverId, ending, { only: "reboot-call-unanswered" })) countSweeperAction("reboot_outcome_unknown");
    }
    for (const [i, op] of ops.entries()) {
      if (performance.now() >= budgetEnds) return;
      let reply: LedgerQueryReply;
      try {
        reply = await requestRunner(this.ctx, serverId, "operation:query", { operationIds: [op.id] });
      } catch (err) {
        if (!(err instanceof RunnerNotConnected)) {
          // Connected but not answering (e.g. frozen): ask again later; one runner must not stall the rest.
          this.silentUntil.set(serverId, performance.now() + this.silentBackoffMs());
          this.ctx.logger.warn("runner did not answer a ledger query", { serverId, operations: ops.length, error: String(err) });
          // But not for ever: those past every grace a runner may take are ended (a runner that never answers
          // would otherwise keep them running as long as it stays connected) — only when it is known to be connected
          // and silent: a request that went unanswered for another reason (Redis, the dispatcher holding it) says
          // nothing of the runner, which may be away and is then given its lost-runner grace.
          if (err instanceof RunnerSilent) for (const late of ops.slice(i)) if (late.give_up_in_ms <= 0) await this.endOverdue(serverId, late, FailureReason.ResultOverdueUnanswered);
          return;
        }
        // No runner: none of this server's overdue operations can be resolved by asking. One away only
        // moments (a network blip, a dispatcher restarting, its own reconnect backoff) re-sends their
        // results once back: they are left for a later sweep until it has been away past the grace.
        // The grace is counted from the operation becoming overdue too: a runner that keeps reconnecting (a crash
        // loop, a flapping link) is always "away moments ago", and its operations must still end.
        const remaining = ops.slice(i);
        const graceLeftMs = await this.awayGraceLeftMs(serverId);
        const endNow = graceLeftMs > 0 ? remaining.filter((op) => op.past_lost_grace) : remaining;
        if (endNow.length < remaining.length) {
          this.ctx.logger.debug("runner away within its grace: its overdue operations wait for it", { serverId, operations: remaining.length - endNow.length });
          // Looked at again a few sweeps on (or when its grace ends, if sooner), not at every sweep.
          this.silentUntil.set(serverId, performance.now() + Math.min(graceLeftMs, 3 * this.ctx.config.SWEEP_INTERVAL_MS));
        }
        for (const lost of endNow) {
          const [error, action] = lost.started_at ? ([FailureReason.RunnerLost, FailureCause.RunnerLost] as const) : ([FailureReason.RunnerUnconfirmed, FailureCause.RunnerUnconfirmed] as const);
          if (await finishOperation(this.ctx, serverId, { operationId: lost.id, status: "failed", cause: action, error })) countSweeperAction(action);
        }
        return;
      }
      const entry = reply[op.id];
      try {
        if (entry?.state === "finished") {
          if (await recordRunnerResult(this.ctx, serverId, entry.result)) countSweeperAction("resolved_from_ledger");
        } else if (!entry || entry.state === "unknown") {
          if (await finishOperation(this.ctx, serverId, { operationId: op.id, status: "failed", cause: FailureCause.ResultLost, error: FailureReason.ResultLost })) countSweeperAction("result_lost");
        } else if (op.give_up_in_ms <= 0) {
          // "running" past every grace a runner may take after a timeout: a process it cannot end, or a start it lost track of.
          await this.endOverdue(serverId, op, FailureReason.ResultOverdueStillRunning);
        } else if (entry.state === "running") {
          // The runner enforces the timeout itself (its kill grace may be long): its result will come.
          const at = performance.now();
          this.answeredRunning.set(op.id, { askAgainAt: at + Math.min(op.give_up_in_ms, this.silentBackoffMs()), forgetAt: at + op.give_up_in_ms + this.silentBackoffMs() });
        }
      } catch (err) {
        this.ctx.logger.warn("could not resolve an overdue operation", { operationId: op.id, error: String(err) });
      }
    }
  }

  /**
   * Ends an operation whose connected runner still has no result for it long past its timeout and every grace
   * a runner may take (give_up_in_ms). As every ending here, conditional (only from running): a result stored
   * first wins, and one that comes after is recorded beside this ending (operation.result_after_end).
   */
  private async endOverdue(serverId: string, op: OverdueRow, error: string): Promise<void> {
    const ended = await finishOperation(this.ctx, serverId, { operationId: op.id, status: "failed", cause: FailureCause.ResultOverdue, error });
    if (!ended) return;
    countSweeperAction("result_overdue");
    this.ctx.logger.warn("ended an operation whose connected runner had no result for it long after its timeout", { serverId, operationId: op.id, error });
  }

  /**
   * How much of RUNNER_LOST_GRACE_SECONDS is left to the server's runner, not connected now (0: none), by
   * PostgreSQL's clock (which stamps last_seen_at; this host's may be off). last_seen_at is not refreshed
   * while a runner stays connected: it is stamped when the runner is admitted and when its connection
   * closes (socket-server.ts), so for a runner not connected now it is when its connection closed — the
   * start of its absence, with no refresh interval the grace would have to outlast. Where that closing
   * went unstamped (its dispatcher was killed, PostgreSQL did not answer then, or this is read in the
   * moment before the stamp lands), last_seen_at is the earlier admission and the runner looks away
   * longer than it is: its operations are failed without the grace, as before it existed, never held
   * past it. Never seen (null), or deleted (no row): no grace.
   */
  private async awayGraceLeftMs(serverId: string): Promise<number> {
    const grace = this.ctx.config.RUNNER_LOST_GRACE_SECONDS;
    if (grace <= 0) return 0;
    const [server] = await this.ctx.prisma.$queryRaw<{ left_ms: number | null }[]>`
      SELECT (extract(epoch FROM last_seen_at + make_interval(secs => ${grace}) - now()) * 1000)::float8 AS left_ms FROM servers WHERE id = ${serverId}::uuid`;
    return Math.max(0, server?.left_ms ?? 0);
  }

  /** How long a runner that did not answer is left alone: a few sweeps, and never less than a few ack timeouts. */
  private silentBackoffMs(): number {
    return Math.max(3 * this.ctx.config.SWEEP_INTERVAL_MS, 3 * this.ctx.config.RUNNER_ACK_TIMEOUT_MS);
  }
}

interface OverdueRow {
  id: string;
  server_id: string;
  started_at: Date | null;
  provider_call_unrecorded: boolean;
  /** Overdue for longer than RUNNER_LOST_GRACE_SECONDS already: ended when its runner is not connected, however recently it was seen. */
  past_lost_grace: boolean;
  /** Until its connected runner is given up on (≤ 0: past it): RESULT_DUE_AFTER_OVERDUE_SECONDS past its overdue mark, by PostgreSQL's clock. */
  give_up_in_ms: number;
}

/** Overdue operations looked at per sweep: each server's oldest in turn (see resolveOverdue). */
const OVERDUE_PER_SWEEP = 200;
/** Runners asked about overdue operations at the same time. */
const LEDGER_QUERY_CONCURRENCY = 8;

/**
 * Whether the operation's job carried sealed inputs that exist nowhere else: env
 * values and deploy overrides. (A registry login's password is re-opened from its
 * stored credential on delivery.)
 */
function hadSecrets(op: { envKeys: string[] }): boolean {
  return op.envKeys.length > 0;
}
