import type { AutomationListOperationsQuery } from "@runbridge/contracts";
import type { Prisma } from "@runbridge/db";
import type { GatewayContext } from "../context";
import { pageBounds, pageOf } from "./cursor";
import { operationView } from "./serializers";

/**
 * One page of operations, newest first, keyset-paginated over
 * (created_at, id): the same for the management API and the Automation API's
 * list, which differ only in `scope` (the tenant, or one key's operations).
 */
export async function listOperationsPage(ctx: GatewayContext, scope: Prisma.OperationWhereInput, q: AutomationListOperationsQuery) {
  // The scope (the tenant; a key's own operations within its allowed servers and operations) and each
  // filter are conditions of their own: a filter can narrow the scope, never replace a part of it.
  const filters: Prisma.OperationWhereInput[] = [];
  if (q.run_id) filters.push({ runId: q.run_id });
  if (q.server_id) filters.push({ serverId: q.server_id });
  if (q.status) filters.push({ status: q.status });
  if (q.type) filters.push({ type: q.type });
  const where: Prisma.OperationWhereInput = { AND: [scope, ...filters, ...pageBounds(q)] };
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
