import { Router } from "express";
import { OperationType, restartRequestSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateBody } from "../../middleware/validate";
import { loadConnectedServer, runAndWait } from "../../services/operations";
import { syncResponse } from "../../services/serializers";
import { OPERATION_PATHS } from "./paths";

/**
 * POST /restart: `docker restart <container_name>`, the name checked against
 * Docker's grammar and passed as one argv element (no shell). Answers like exec.
 */
export function restartRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post(OPERATION_PATHS[OperationType.Restart], async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Restart);
    const body = validateBody(restartRequestSchema, req.body);
    const server = await loadConnectedServer(ctx, auth, body.server_id);

    const final = await runAndWait(
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
      res,
    );
    res.status(200).json(syncResponse(final));
  });
  return router;
}
