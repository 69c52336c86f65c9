import { Router } from "express";
import { operationIdParamSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertOperationInScope } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { NotFoundError } from "../../errors";
import { validateParam } from "../../middleware/validate";
import { operationView } from "../../services/serializers";
import { STARTED_OPERATION_PATHS } from "./paths";

/**
 * GET /operations/{id}: an operation of the key's tenant, of a kind and on a
 * server the key may use (another tenant's is 404; outside the key's scope, 403).
 */
export function operationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get(STARTED_OPERATION_PATHS.one, async (req, res) => {
    const auth = automationAuth(res);
    const notFound = () => new NotFoundError(`Operation ${String(req.params.operationId)} not found`);
    const id = validateParam<string>(operationIdParamSchema, req.params.operationId, notFound);
    const op = await ctx.operations.findForTenant(id, auth.tenantId);
    if (!op) throw notFound();
    assertOperationInScope(auth.key, op);
    res.json(operationView(op));
  });
  return router;
}
