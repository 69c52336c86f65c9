import { Limits, OperationType, rebootRequestSchema } from "@runbridge/contracts";
import { Router } from "express";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateBody } from "../../middleware/validate";
import { assertRunnerConnected, loadTargetServer, startOperation } from "../../services/operations";
import { OPERATION_PATHS } from "./paths";

/**
 * POST /reboot: through the server's cloud provider API when it is linked to
 * one (the runner may then be offline), else — or if that call fails — by the
 * runner's RUNBRIDGE_REBOOT_COMMAND. The dispatcher chooses and records the
 * path in the operation's params (reboot_path, reboot_reason).
 *
 * Asynchronous (202), like deploy: a reboot can take the runner down before
 * it reports, so holding the request open would only end in `running`.
 */
export function rebootRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post(OPERATION_PATHS[OperationType.Reboot], async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Reboot);
    const body = validateBody(rebootRequestSchema, req.body);
    const server = await loadTargetServer(ctx, auth, body.server_id);
    if (!server.provider) await assertRunnerConnected(ctx, server);

    const op = await startOperation(ctx, auth, {
      serverId: server.id,
      type: OperationType.Reboot,
      command: "reboot",
      params: server.provider ? { provider: server.provider } : {},
      timeoutSeconds: Limits.timeoutDefaultSeconds,
      runId: body.run_id,
      runContext: body.run_context,
    });
    res.status(202).json({ operation_id: op.id, status: op.status });
  });
  return router;
}
