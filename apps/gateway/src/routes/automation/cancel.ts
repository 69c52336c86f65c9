import { Router } from "express";
import { cancelOperationRequestSchema, isTerminal, operationIdParamSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertOperationInScope } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { ConflictError, NotFoundError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";
import { cancelOperation } from "../../services/cancel";
import { STARTED_OPERATION_PATHS } from "./paths";

/** How long the request waits for the runner to confirm the kill before answering with the status so far. */
const CONFIRM_WAIT_MS = 5000;

/**
 * POST /operations/{id}/cancel (extension): stops the operation's whole process
 * tree. 202 with the status after a short wait: `cancelled` once confirmed,
 * `running` while the kill is in flight (poll the operation), or the status it
 * reached on its own if it finished first. 409 if it had already ended.
 */
export function cancelRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post(STARTED_OPERATION_PATHS.cancel, async (req, res) => {
    const auth = automationAuth(res);
    const notFound = () => new NotFoundError(`Operation ${String(req.params.operationId)} not found`);
    const id = validateParam<string>(operationIdParamSchema, req.params.operationId, notFound);
    // An empty body is the common case (curl -X POST).
    const body = validateBody(cancelOperationRequestSchema, req.body === undefined || req.body === null ? {} : req.body);
    const op = await ctx.prisma.operation.findFirst({ where: { id, tenantId: auth.tenantId } });
    if (!op) throw notFound();
    assertOperationInScope(auth.key, op);
    if (isTerminal(op.status)) throw new ConflictError(`Operation ${op.id} already ended with status "${op.status}"; there is nothing to cancel`);

    const registration = ctx.waiter.register(op.id);
    res.on("close", () => registration.cancel());
    const outcome = await cancelOperation(ctx, auth, op, body.reason);
    const load = async () => (await ctx.prisma.operation.findUniqueOrThrow({ where: { id: op.id }, select: { status: true } })).status;
    if (outcome === "requested") await registration.wait(CONFIRM_WAIT_MS, async () => isTerminal(await load()));
    else registration.cancel();
    res.status(202).json({ operation_id: op.id, status: await load(), cancel_requested: true });
  });
  return router;
}
