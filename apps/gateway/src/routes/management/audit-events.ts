import { Router } from "express";
import Joi from "joi";
import { type CreatedWindowQuery, Limits, createdWindowKeys, uuid } from "@runbridge/contracts";
import type { AuditEvent, Prisma } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { validateQuery } from "../../middleware/validate";
import { pageBounds, pageOf } from "../../services/cursor";

interface ListAuditEventsQuery extends CreatedWindowQuery {
  automation_key_id?: string;
  run_id?: string;
  type?: string;
  operation_id?: string;
  server_id?: string;
  cursor?: string;
  limit: number;
}

/**
 * Event types are open-ended (operation.created, operation.finished,
 * key.created, key.updated, key.revoked, rate_limited, ...), so `type` is
 * checked for shape, not against a list: an unknown type simply matches nothing.
 */
const listAuditEventsQuerySchema = Joi.object<ListAuditEventsQuery>({
  automation_key_id: uuid(),
  run_id: Joi.string().max(Limits.runIdMaxChars),
  type: Joi.string()
    .max(100)
    .pattern(/^[a-z][a-z0-9_.]*$/)
    .message('"type" is an event type such as operation.created, key.revoked or rate_limited'),
  operation_id: uuid(),
  server_id: uuid(),
  cursor: Joi.string().max(200),
  limit: Joi.number().integer().min(1).max(200).default(50),
  ...createdWindowKeys,
});

export function auditEventView(e: AuditEvent) {
  return {
    id: e.id,
    type: e.type,
    automation_key_id: e.automationKeyId,
    operation_id: e.operationId,
    server_id: e.serverId,
    run_id: e.runId,
    client_ip: e.clientIp,
    data: e.data,
    created_at: e.createdAt.toISOString(),
  };
}

/** GET /audit-events: the tenant's audit trail, newest first, keyset-paginated like /operations, optionally within a created_at window (exports). */
export function auditEventsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get("/audit-events", async (req, res) => {
    const auth = managementAuth(res);
    const q = validateQuery<ListAuditEventsQuery>(listAuditEventsQuerySchema, req.query);
    // Tenant first: another tenant's key, run or operation id filters to nothing.
    const filters: Prisma.AuditEventWhereInput = { tenantId: auth.tenantId };
    if (q.automation_key_id) filters.automationKeyId = q.automation_key_id;
    if (q.run_id) filters.runId = q.run_id;
    if (q.type) filters.type = q.type;
    if (q.operation_id) filters.operationId = q.operation_id;
    if (q.server_id) filters.serverId = q.server_id;
    const where: Prisma.AuditEventWhereInput = { AND: [filters, ...pageBounds(q)] };
    const rows = await ctx.prisma.auditEvent.findMany({ where, orderBy: [{ createdAt: "desc" }, { id: "desc" }], take: q.limit + 1 });
    const { page, nextCursor } = pageOf(rows, q.limit);
    res.json({ data: page.map(auditEventView), next_cursor: nextCursor });
  });
  return router;
}
