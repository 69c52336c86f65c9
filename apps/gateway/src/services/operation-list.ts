import type { AutomationListOperationsQuery } from "@runbridge/contracts";
import type { Prisma } from "@runbridge/db";
import type { GatewayContext } from "../context";
import { encodeCursor, pageBounds, pageOf } from "./cursor";
import { operationView } from "./serializers";

/**
 * One page of operations, newest first, keyset-paginated over
 * (created_at, id): the same for the management API and the Automation API's
 * list, which differ only in `scope` (the tenant, or one key's operations).
 * `limit` is a maximum: with `output`, the page also ends once its operations' stored output
 * reaches OPERATION_LIST_OUTPUT_MAX_BYTES, and `next_cursor` continues from there.
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
    // Never the output here: up to 1 MiB per stream per row, 400 MiB for 200 rows. With `output` it is read
    // below for only as many rows as the budget holds; a list that only shows statuses (the dashboard's,
    // polled every few seconds) leaves it out.
    omit: { stdout: true, stderr: true },
  });
  const { page, nextCursor } = pageOf(rows, q.limit);
  if (!q.output) return { data: page.map(operationView), next_cursor: nextCursor };
  const withOutput = await outputWithinBudget(ctx, page);
  return { data: withOutput.page.map(operationView), next_cursor: withOutput.last ? encodeCursor(withOutput.last) : nextCursor };
}

interface OutputRow {
  id: string;
  fits: boolean;
  stdout: string | null;
  stderr: string | null;
}

/**
 * `page`'s rows with their stdout and stderr, up to the first one whose output would take the page's output
 * past OPERATION_LIST_OUTPUT_MAX_BYTES (the first row is always kept, so paging moves on), and `last`,
 * the row the page then ends at (null when every row fits). One statement, so what is measured is what
 * is read (a row finishing in between cannot bring output that was not counted); octet_length reads a
 * stored value's size from its header, not the value, and a row past the budget has its output never
 * read (the CASE), so what the page leaves out costs nothing however large.
 */
async function outputWithinBudget<T extends { id: string; createdAt: Date }>(
  ctx: GatewayContext,
  page: T[],
): Promise<{ page: (T & { stdout: string | null; stderr: string | null })[]; last: T | null }> {
  if (page.length === 0) return { page: [], last: null };
  const outputs = await ctx.prisma.$queryRaw<OutputRow[]>`
    SELECT id, fits, CASE WHEN fits THEN stdout END AS stdout, CASE WHEN fits THEN stderr END AS stderr
    FROM (
      SELECT id, stdout, stderr,
             row_number() OVER w = 1
             OR sum(coalesce(octet_length(stdout), 0) + coalesce(octet_length(stderr), 0)) OVER w <= ${ctx.config.OPERATION_LIST_OUTPUT_MAX_BYTES}::bigint AS fits
      FROM operations
      WHERE id = ANY(${page.map((r) => r.id)}::uuid[])
      WINDOW w AS (ORDER BY created_at DESC, id DESC)
    ) o`;
  const byId = new Map(outputs.map((o) => [o.id, o]));
  // In the same order as `page`, so the rows that fit are a prefix of it.
  const cut = page.findIndex((r) => byId.get(r.id)?.fits === false);
  const kept = cut === -1 ? page : page.slice(0, cut);
  return {
    // A row missing here was deleted since it was listed (retention, its server's removal): left out.
    page: kept.flatMap((r) => {
      const o = byId.get(r.id);
      return o ? [{ ...r, stdout: o.stdout, stderr: o.stderr }] : [];
    }),
    last: cut > 0 ? (page[cut - 1] ?? null) : null,
  };
}
