import { setTimeout as sleep } from "node:timers/promises";
import { TERMINAL_STATUSES } from "@runbridge/contracts";
import { pruneAuditEventsBatch, pruneOperationsBatch, type DeletedByTenant } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { countRetentionDeleted, countRetentionPass, type RetentionTable } from "./metrics";

const DAY_MS = 86_400_000;
const PASS_EVERY_MS = 3_600_000;
/** Rows per DELETE: each statement stays short (locks, WAL burst, the statement timeout) whatever the backlog. */
export const RETENTION_BATCH = 500;
/** Between two batches, so a large first prune after an upgrade never hogs PostgreSQL. */
const PAUSE_BETWEEN_BATCHES_MS = 50;

/** What one pass deleted, by tenant. */
export interface PruneCounts {
  operations: DeletedByTenant;
  auditEvents: DeletedByTenant;
}

/**
 * Deletes ended operations (with their output) older than
 * OPERATION_RETENTION_DAYS and audit events older than AUDIT_RETENTION_DAYS;
 * 0 keeps them forever. Every dispatcher runs it at start and then hourly: the
 * deletes skip rows another dispatcher is deleting, so running it in several
 * places at once costs only a few empty statements.
 */
export class Retention {
  private timer: NodeJS.Timeout | null = null;
  private readonly stopping = new AbortController();
  private current: Promise<unknown> = Promise.resolve();

  constructor(private readonly ctx: DispatcherContext) {}

  start(): void {
    const { OPERATION_RETENTION_DAYS: ops, AUDIT_RETENTION_DAYS: audit } = this.ctx.config;
    const days = (n: number) => (n === 0 ? "kept forever" : `${n} days`);
    this.ctx.logger.info("retention", { operations: days(ops), auditEvents: days(audit) });
    if (ops === 0 && audit === 0) return;
    const run = () => {
      this.current = this.pruneOnce().catch((err: unknown) => this.ctx.logger.warn("retention pass failed; retried at the next one", { error: String(err) }));
    };
    run();
    this.timer = setInterval(run, PASS_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
    await this.current;
  }

  /** One pass: deletes everything past its retention, batch after batch. */
  async pruneOnce(): Promise<PruneCounts> {
    const { OPERATION_RETENTION_DAYS: opDays, AUDIT_RETENTION_DAYS: auditDays } = this.ctx.config;
    const now = Date.now();
    const counts: PruneCounts = { operations: new Map(), auditEvents: new Map() };
    // Each table on its own: a failure pruning one (say, a statement timeout) must not stop the other's pruning.
    const failures: unknown[] = [];
    const table = async (name: RetentionTable, days: number, drain: () => Promise<void>) => {
      if (!days) return;
      try {
        await drain();
        countRetentionPass(name, "ok");
      } catch (err) {
        countRetentionPass(name, "failed");
        failures.push(err);
      }
    };
    try {
      await table("operations", opDays, async () => {
        const cutoff = new Date(now - opDays * DAY_MS);
        for (const status of TERMINAL_STATUSES) await this.drain(counts.operations, (limit) => pruneOperationsBatch(this.ctx.prisma, cutoff, status, limit));
      });
      await table("audit_events", auditDays, () => this.drain(counts.auditEvents, (limit) => pruneAuditEventsBatch(this.ctx.prisma, new Date(now - auditDays * DAY_MS), limit)));
    } finally {
      // Also after a failed batch: what the earlier ones deleted is recorded.
      await this.record(counts);
    }
    if (failures.length > 0) throw failures[0];
    return counts;
  }

  private async record(counts: PruneCounts): Promise<void> {
    const { OPERATION_RETENTION_DAYS: opDays, AUDIT_RETENTION_DAYS: auditDays } = this.ctx.config;
    for (const tenantId of new Set([...counts.operations.keys(), ...counts.auditEvents.keys()])) {
      const operations = counts.operations.get(tenantId) ?? 0;
      const auditEvents = counts.auditEvents.get(tenantId) ?? 0;
      countRetentionDeleted("operations", operations);
      countRetentionDeleted("audit_events", auditEvents);
      this.ctx.logger.info("retention: deleted", { tenantId, operations, auditEvents });
      // The trail says why older records are missing: a gap an auditor can tell from tampering.
      await this.ctx.prisma.auditEvent
        .create({
          data: {
            tenantId,
            type: "retention.pruned",
            data: { operations_deleted: operations, audit_events_deleted: auditEvents, operation_retention_days: opDays, audit_retention_days: auditDays },
          },
        })
        .catch((err: unknown) => this.ctx.logger.warn("could not record the retention.pruned audit event", { tenantId, error: String(err) }));
    }
  }

  /** Deletes batch after batch, adding to `total`, until one comes back short or the dispatcher stops. */
  private async drain(total: DeletedByTenant, batch: (limit: number) => Promise<DeletedByTenant>): Promise<void> {
    while (!this.stopping.signal.aborted) {
      const deleted = await batch(RETENTION_BATCH);
      let n = 0;
      for (const [tenantId, count] of deleted) {
        total.set(tenantId, (total.get(tenantId) ?? 0) + count);
        n += count;
      }
      if (n < RETENTION_BATCH) return;
      await sleep(PAUSE_BETWEEN_BATCHES_MS);
    }
  }
}
