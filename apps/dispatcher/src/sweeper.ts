import { FailureReason } from "@runbridge/contracts";
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

  constructor(private readonly ctx: DispatcherContext) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.ctx.config.SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async sweep(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.failUndelivered();
      await this.resolveOverdue();
    } catch (err) {
      this.ctx.logger.warn("sweep failed", { error: String(err) });
    } finally {
      this.running = false;
    }
  }

  /** Past its delivery deadline and never handed to a runner (e.g. its job was lost with Redis). */
  private async failUndelivered(): Promise<void> {
    const margin = 2 * this.ctx.config.SWEEP_INTERVAL_MS;
    const ops = await this.ctx.prisma.operation.findMany({
      where: { status: "running", dispatchedAt: null, deliverBy: { lt: new Date(Date.now() - margin) } },
      select: { id: true, serverId: true },
      take: 500,
    });
    for (const op of ops) {
      await finishOperation(this.ctx, op.serverId, { operationId: op.id, status: "failed", error: FailureReason.RunnerOffline }, { onlyIfUndispatched: true });
    }
  }

  /** Handed to a runner, and its result is overdue: ask the runner's ledger, or give up on it. */
  private async resolveOverdue(): Promise<void> {
    const grace = this.ctx.config.RESULT_GRACE_SECONDS;
    const overdue = await this.ctx.prisma.$queryRaw<{ id: string; server_id: string }[]>`
      SELECT id, server_id FROM operations
      WHERE status = 'running' AND dispatched_at IS NOT NULL
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
        if (!(err instanceof RunnerNotConnected)) throw err;
        await finishOperation(this.ctx, op.server_id, { operationId: op.id, status: "failed", error: FailureReason.RunnerLost });
      }
    }
  }
}
