import { Router } from "express";
import { automationListOperationsQuerySchema } from "@runbridge/contracts";
import type { Prisma } from "@runbridge/db";
import { automationAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { ValidationError } from "../../errors";
import { validateQuery } from "../../middleware/validate";
import { decodeCursor, encodeCursor } from "../../services/cursor";
import { operationView } from "../../services/serializers";

/**
 * GET /operations?run_id=... (extension): the operations this automation key
 * started, newest first, keyset-paginated like the management API. Limited to
 * the key's own operations (not the whole tenant's): a key scoped to some
 * servers must not read what other keys ran elsewhere; a CI run uses one key.
 */
export function listOperationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get("/operations", async (req, res) => {
    const auth = automationAuth(res);
    const q = validateQuery(automationListOperationsQuerySchema, req.query);
    const where: Prisma.OperationWhereInput = { tenantId: auth.tenantId, automationKeyId: auth.key.id };
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
