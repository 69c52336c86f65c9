import type { AutomationListOperationsQuery } from "@runbridge/contracts";
import type { Prisma } from "@runbridge/db";
import type { GatewayContext } from "../context";
import { createdWindow, keysetAfter, pageOf } from "./cursor";
import { operationView } from "./serializers";

/** A where-input's AND, as a list to add to. */
function andList(and: Prisma.OperationWhereInput["AND"]): Prisma.OperationWhereInput[] {
  if (and === undefined) return [];
  return Array.isArray(and) ? and : [and];
}

/**
 * One page of operations, newest first, keyset-paginated over
 * (created_at, id): the same for the management API and the Automation API's
 * list, which differ only in `scope` (the tenant, or one key's operations).
 */
export async function listOperationsPage(ctx: GatewayContext, scope: Prisma.OperationWhereInput, q: AutomationListOperationsQuery) {
  const where: Prisma.OperationWhereInput = { ...scope };
  if (q.run_id) where.runId = q.run_id;
  if (q.server_id) where.serverId = q.server_id;
  if (q.status) where.status = q.status;
  if (q.type) where.type = q.type;
  if (q.cursor) Object.assign(where, keysetAfter(q.cursor));
  // Beside the scope's own conditions (a key's allowed servers and operations), never in their place.
  const window = createdWindow(q);
  if (window) where.AND = [...andList(scope.AND), window];
  const rows = await ctx.prisma.operation.findMany({
    where,
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: q.limit + 1,
    include: { server: { select: { name: true } } },
    // Up to 1 MiB per stream per row: a page of 50 finished builds is 100 MiB to read and serialise.
    // A list that only shows statuses (the dashboard's, polled every few seconds) leaves them out.
    omit: q.output ? {} : { stdout: true, stderr: true },
  });
  const { page, nextCursor } = pageOf(rows, q.limit);
  return { data: page.map(operationView), next_cursor: nextCursor };
}
