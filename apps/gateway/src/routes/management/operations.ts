import { Router } from "express";
import { listOperationsQuerySchema } from "@runbridge/contracts";
import type { Prisma } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { ValidationError } from "../../errors";
import { validateQuery } from "../../middleware/validate";
import { decodeCursor, encodeCursor } from "../../services/cursor";
import { operationView } from "../../services/serializers";

/** GET /operations: newest first, keyset-paginated, filterable as the dashboard's Logs needs. */
export function managementOperationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get("/operations", async (req, res) => {
    const auth = managementAuth(res);
    const q = validateQuery<{ automation_key_id?: string; run_id?: string; server_id?: string; status?: string; type?: string; cursor?: string; limit: number }>(
      listOperationsQuerySchema,
      req.query,
    );
    const where: Prisma.OperationWhereInput = { tenantId: auth.tenantId };
    if (q.automation_key_id) where.automationKeyId = q.automation_key_id;
    if (q.run_id) where.runId = q.run_id;
    if (q.server_id) where.serverId = q.server_id;
    if (q.status) where.status = q.status;
    if (q.type) where.type = q.type;
    if (q.cursor) {
      const c = decodeCursor(q.cursor);
      if (!c) throw new ValidationError('"cursor" is not a cursor this API returned');
      where.OR = [{ createdAt: { lt: c.createdAt } }, { createdAt: c.createdAt, id: { lt: c.id } }];
    }
    const rows = await ctx.prisma.operation.findMany({
      where,
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: q.limit + 1,
      include: { server: { select: { name: true } } },
    });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    res.json({ data: page.map(operationView), next_cursor: rows.length > q.limit && last ? encodeCursor(last) : null });
  });
  return router;
}
