import { Router } from "express";
import { automationListOperationsQuerySchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { validateQuery } from "../../middleware/validate";
import { listOperationsPage } from "../../services/operation-list";
import { STARTED_OPERATION_PATHS } from "./paths";

/**
 * GET /operations?run_id=... (extension): the operations this automation key
 * started, newest first, keyset-paginated like the management API. Limited to
 * the key's own operations (not the whole tenant's): a key scoped to some
 * servers must not read what other keys ran elsewhere; a CI run uses one key.
 */
export function listOperationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get(STARTED_OPERATION_PATHS.list, async (req, res) => {
    const auth = automationAuth(res);
    const q = validateQuery(automationListOperationsQuerySchema, req.query);
    res.json(await listOperationsPage(ctx, { tenantId: auth.tenantId, automationKeyId: auth.key.id }, q));
  });
  return router;
}
