import { Router } from "express";
import { OperationType, restartRequestSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateBody } from "../../middleware/validate";
import { assertRunnerConnected, loadTargetServer, startOperation, syncWaitMs, waitForOperation } from "../../services/operations";
import { syncResponse } from "../../services/serializers";

/**
 * POST /restart: `docker restart <container_name>`, the name checked against
 * Docker's grammar and passed as one argv element (no shell). Answers like exec.
 */
export function restartRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post("/restart", async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Restart);
    const body = validateBody(restartRequestSchema, req.body);
    const server = await loadTargetServer(ctx, auth, body.server_id);
    await assertRunnerConnected(ctx, server);

    let registration: ReturnType<GatewayContext["waiter"]["register"]> | undefined;
    const op = await startOperation(
      ctx,
      auth,
      {
        serverId: server.id,
        type: OperationType.Restart,
        command: `docker restart ${body.container_name}`,
        params: { container_name: body.container_name },
        timeoutSeconds: body.timeout_seconds,
        runId: body.run_id,
        runContext: body.run_context,
      },
      (created) => {
        registration = ctx.waiter.register(created.id);
      },
    );
    if (!registration) throw new Error("completion waiter was not registered");
    res.on("close", () => registration?.cancel());
    const final = await waitForOperation(ctx, op.id, registration, syncWaitMs(ctx, body.timeout_seconds));
    res.status(200).json(syncResponse(final));
  });
  return router;
}
