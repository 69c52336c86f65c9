import { Router } from "express";
import { automationListOperationsQuerySchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { operationsInScope } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateQuery } from "../../middleware/validate";
import { listOperationsPage } from "../../services/operation-list";
import { STARTED_OPERATION_PATHS } from "./paths";

/**
 * GET /operations?run_id=... (extension): the operations this automation key
 * started, newest first, keyset-paginated like the management API. Limited to
 * the key's own operations (not the whole tenant's): a key scoped to some
 * servers must not read what other keys ran elsewhere; a CI run uses one key.
 * And of those, the ones its scope still covers.
 */
export function listOperationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get(STARTED_OPERATION_PATHS.list, async (req, res) => {
    const { tenantId, key } = automationAuth(res);
    const q = validateQuery(automationListOperationsQuerySchema, req.query);
    // Its own operations as far as its scope still reaches: reading one takes the rights to start
    // it (GET /operations/{id} answers 403 once the key is narrowed), and so does listing it.
    res.json(await listOperationsPage(ctx, { tenantId, automationKeyId: key.id, AND: operationsInScope(key) }, q));
  });
  return router;
}
