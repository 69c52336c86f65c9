import { Queue } from "bullmq";
import { FailureReason, JobCatalog, JobName, QueueName, type DeliverOperationJob, type OperationType } from "@runbridge/contracts";
import { createRedis } from "@runbridge/common";
import type { DispatcherContext } from "./context";
import { recordRunnerResult, finishOperation } from "./results";
import { RunnerNotConnected, requestRunner } from "./runner-link";

/**
 * Guarantees every accepted operation reaches a terminal state, whatever was
 * lost on the way (a job, a result, a runner). Every dispatcher runs it; all
 * its writes are conditional transitions, so concurrent sweeps are harmless.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly queue: Queue<DeliverOperationJob>;

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
    await this.queue.close().catch(() => undefined);
  }

  async sweep(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.recoverUndelivered();
      await this.resolveOverdue();
    } catch (err) {
      this.ctx.logger.warn("sweep failed", { error: String(err) });
    } finally {
      this.running = false;
    }
  }

  /**
   * Operations never handed to a runner. Normally their job is in the queue and
   * the worker handles them; if the job is gone (Redis restarted without
   * persistence, flushed, failed over) they are re-enqueued from Postgres — or,
   * when their secret inputs travelled only in the lost job, ended as failed
   * with the reason, since running them without those inputs would be wrong.
   */
  private async recoverUndelivered(): Promise<void> {
    const cutoff = new Date(Date.now() - this.ctx.config.REQUEUE_AFTER_SECONDS * 1000);
    const ops = await this.ctx.prisma.operation.findMany({
      // Only this deployment's: another one sharing the database keeps its jobs in its own queue.
      where: { status: "running", dispatchedAt: null, createdAt: { lt: cutoff }, OR: [{ redisPrefix: this.ctx.config.REDIS_PREFIX }, { redisPrefix: null }] },
      select: { id: true, serverId: true, type: true, envKeys: true, deliverBy: true },
      orderBy: { createdAt: "asc" },
      take: 500,
    });
    for (const op of ops) {
      // "unknown" is a job that no longer exists, or whose hash is left in no state list (a list
      // lost to eviction): either way nothing will deliver it.
      const state = await this.queue.getJobState(op.id);
      if (state !== "unknown" && state !== "failed" && state !== "completed") continue;
      if (op.deliverBy.getTime() < Date.now()) {
        await finishOperation(this.ctx, op.serverId, { operationId: op.id, status: "failed", error: FailureReason.RunnerOffline }, { onlyIfUndispatched: true });
      } else if (op.type === "deploy" && !(await this.ctx.prisma.deployment.findUnique({ where: { operationId: op.id }, select: { id: true } }))) {
        // The gateway failed between the operation and its deployment row: with no row the
        // deploy cannot wait its turn behind the application's other deploys (deploy-turn.ts).
        await finishOperation(this.ctx, op.serverId, { operationId: op.id, status: "failed", error: DEPLOYMENT_NOT_RECORDED }, { onlyIfUndispatched: true });
      } else if (hadSecrets(op)) {
        await finishOperation(this.ctx, op.serverId, { operationId: op.id, status: "failed", error: FailureReason.QueueLost }, { onlyIfUndispatched: true });
      } else {
        // An orphaned hash would make the add below a no-op (same job id): remove whatever is left.
        await this.queue.remove(op.id).catch(() => undefined);
        const entry = JobCatalog[JobName.DeliverOperation];
        await this.queue.add(JobName.DeliverOperation, { operationId: op.id, serverId: op.serverId, type: op.type as OperationType }, { ...entry.options, jobId: op.id });
        this.ctx.logger.warn("re-enqueued an operation whose job was lost", { operationId: op.id });
      }
    }
  }

  /** Handed to a runner, and its result is overdue: ask the runner's ledger, or give up on it. */
  private async resolveOverdue(): Promise<void> {
    const grace = this.ctx.config.RESULT_GRACE_SECONDS;
    const overdue = await this.ctx.prisma.$queryRaw<{ id: string; server_id: string; started_at: Date | null }[]>`
      SELECT id, server_id, started_at FROM operations
      WHERE status = 'running' AND dispatched_at IS NOT NULL
        AND (redis_prefix = ${this.ctx.config.REDIS_PREFIX} OR redis_prefix IS NULL)
        AND COALESCE(started_at, dispatched_at) + make_interval(secs => timeout_seconds + ${grace}) < now()
      LIMIT 200`;
    for (const op of overdue) {
      try {
        const reply = await requestRunner(this.ctx, op.server_id, "operation:query", { operationIds: [op.id] });
        const entry = reply[op.id];
        if (entry?.state === "finished") await recordRunnerResult(this.ctx, op.server_id, entry.result);
        else if (!entry || entry.state === "unknown") {
          await finishOperation(this.ctx, op.server_id, { operationId: op.id, status: "failed", error: FailureReason.ResultLost });
        }
        // "running": the runner enforces the timeout itself; its result will come.
      } catch (err) {
        if (!(err instanceof RunnerNotConnected)) {
          // Connected but not answering (e.g. frozen): ask again next sweep; one runner must not stall the rest.
          this.ctx.logger.warn("runner did not answer a ledger query", { operationId: op.id, error: String(err) });
          continue;
        }
        const error = op.started_at ? FailureReason.RunnerLost : FailureReason.RunnerUnconfirmed;
        await finishOperation(this.ctx, op.server_id, { operationId: op.id, status: "failed", error });
      }
    }
  }
}

/** Why a lost deploy job whose deployment row was never written is failed rather than re-enqueued. */
export const DEPLOYMENT_NOT_RECORDED =
  "deployment not recorded: the gateway failed before recording this deploy, so it could not wait for the application's other deploys; nothing ran. Retry the request";

/**
 * Whether the operation's job carried sealed inputs that exist nowhere else: env
 * values and deploy overrides. (A registry login's password is re-opened from its
 * stored credential on delivery.)
 */
function hadSecrets(op: { envKeys: string[] }): boolean {
  return op.envKeys.length > 0;
}
