import { Limits, OperationType, rebootRequestSchema } from "@runbridge/contracts";
import { Router } from "express";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateBody } from "../../middleware/validate";
import { assertRunnerConnected, loadTargetServer, startOperation, syncWaitMs, waitForOperation } from "../../services/operations";
import { syncResponse } from "../../services/serializers";

/**
 * POST /reboot: through the server's cloud provider API when it is linked to
 * one (the runner may then be offline), else — or if that call fails — by the
 * runner's RUNBRIDGE_REBOOT_COMMAND. The dispatcher chooses and records the
 * path in the operation's params (reboot_path, reboot_reason). Answers like
 * exec: the result if the reboot request ends in time, else `running`.
 */
export function rebootRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post("/reboot", async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Reboot);
    const body = validateBody(rebootRequestSchema, req.body);
    const server = await loadTargetServer(ctx, auth, body.server_id);
    if (!server.provider) await assertRunnerConnected(ctx, server);

    const timeoutSeconds = Limits.timeoutDefaultSeconds;
    let registration: ReturnType<GatewayContext["waiter"]["register"]> | undefined;
    const op = await startOperation(
      ctx,
      auth,
      {
        serverId: server.id,
        type: OperationType.Reboot,
        command: "reboot",
        params: server.provider ? { provider: server.provider } : {},
        timeoutSeconds,
        runId: body.run_id,
        runContext: body.run_context,
      },
      (created) => {
        registration = ctx.waiter.register(created.id);
      },
    );
    if (!registration) throw new Error("completion waiter was not registered");
    res.on("close", () => registration?.cancel());
    const final = await waitForOperation(ctx, op.id, registration, syncWaitMs(ctx, timeoutSeconds));
    const params = (final.params ?? {}) as Record<string, unknown>;
    res.status(200).json({
      ...syncResponse(final),
      ...(typeof params.reboot_path === "string" ? { reboot_path: params.reboot_path, reboot_reason: params.reboot_reason } : {}),
    });
  });
  return router;
}
