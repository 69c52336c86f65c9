import type { PrismaClient } from "@prisma/client";

/** Rows a batch deleted, by tenant (for each tenant's `retention.pruned` audit event). */
export type DeletedByTenant = Map<string, number>;

function byTenant(rows: { tenant_id: string }[]): DeletedByTenant {
  const counts: DeletedByTenant = new Map();
  for (const { tenant_id } of rows) counts.set(tenant_id, (counts.get(tenant_id) ?? 0) + 1);
  return counts;
}

/**
 * Deletes up to `limit` ended operations of one status accepted before
 * `cutoff`, oldest first. One status at a time, so that the (status,
 * created_at) index yields the oldest rows in order and the statement reads
 * about `limit` of them: with several statuses PostgreSQL read and sorted the
 * whole backlog for every batch (2.7 s a batch at 1.8 million rows, past the
 * statement timeout at about ten million). Their deployment rows go with them
 * (ON DELETE CASCADE), except that the latest deployment of each application
 * and its operation are kept whatever their age: "what is deployed there"
 * must stay answerable for an application last deployed long ago. SKIP LOCKED
 * lets every dispatcher prune at once without waiting on each other.
 */
export async function pruneOperationsBatch(prisma: PrismaClient, cutoff: Date, status: string, limit: number): Promise<DeletedByTenant> {
  const rows = await prisma.$queryRaw<{ tenant_id: string }[]>`
    DELETE FROM operations WHERE id IN (
      SELECT o.id FROM operations o
      WHERE o.status = ${status}
        AND o.created_at < ${cutoff}
        AND NOT EXISTS (
          SELECT 1 FROM deployments d
          WHERE d.operation_id = o.id
            AND d.id = (SELECT d2.id FROM deployments d2 WHERE d2.application_id = d.application_id ORDER BY d2.created_at DESC, d2.id DESC LIMIT 1)
        )
      ORDER BY o.created_at
      LIMIT ${limit}
      FOR UPDATE OF o SKIP LOCKED
    )
    RETURNING tenant_id::text`;
  return byTenant(rows);
}

/** Deletes up to `limit` audit events recorded before `cutoff`, oldest first (the created_at index). */
export async function pruneAuditEventsBatch(prisma: PrismaClient, cutoff: Date, limit: number): Promise<DeletedByTenant> {
  const rows = await prisma.$queryRaw<{ tenant_id: string }[]>`
    DELETE FROM audit_events WHERE id IN (
      SELECT id FROM audit_events
      WHERE created_at < ${cutoff}
      ORDER BY created_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING tenant_id::text`;
  return byTenant(rows);
}
