import { Router } from "express";
import { operationIdParamSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertServerAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { NotFoundError } from "../../errors";
import { validateParam } from "../../middleware/validate";
import { operationView } from "../../services/serializers";

/**
 * GET /operations/{id}: an operation of the key's tenant on a server the key may
 * target (another tenant's is 404; a server outside the key's scope is 403).
 */
export function operationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get("/operations/:operationId", async (req, res) => {
    const auth = automationAuth(res);
    const notFound = () => new NotFoundError(`Operation ${String(req.params.operationId)} not found`);
    const id = validateParam<string>(operationIdParamSchema, req.params.operationId, notFound);
    const op = await ctx.operations.findForTenant(id, auth.tenantId);
    if (!op) throw notFound();
    assertServerAllowed(auth.key, op.serverId);
    res.json(operationView(op));
  });
  return router;
}
