import { Router } from "express";
import { listOperationsQuerySchema } from "@runbridge/contracts";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { validateQuery } from "../../middleware/validate";
import { listOperationsPage } from "../../services/operation-list";

/** GET /operations: newest first, keyset-paginated, filterable as the dashboard's Logs needs. */
export function managementOperationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get("/operations", async (req, res) => {
    const auth = managementAuth(res);
    const q = validateQuery(listOperationsQuerySchema, req.query);
    res.json(await listOperationsPage(ctx, { tenantId: auth.tenantId, ...(q.automation_key_id ? { automationKeyId: q.automation_key_id } : {}) }, q));
  });
  return router;
}
