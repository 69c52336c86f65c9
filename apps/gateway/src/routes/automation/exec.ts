import { Router } from "express";
import { OperationType, execRequestSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateBody } from "../../middleware/validate";
import { assertRunnerConnected, loadTargetServer, startOperation, syncWaitMs, waitForOperation } from "../../services/operations";
import { syncResponse } from "../../services/serializers";

/** POST /exec: run a shell command; answers with the result if it ends within the wait bound. */
export function execRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post("/exec", async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Exec);
    const body = validateBody(execRequestSchema, req.body);
    const server = await loadTargetServer(ctx, auth, body.server_id);
    await assertRunnerConnected(ctx, server);

    let registration: ReturnType<GatewayContext["waiter"]["register"]> | undefined;
    const op = await startOperation(
      ctx,
      auth,
      {
        serverId: server.id,
        type: OperationType.Exec,
        command: body.command,
        workingDirectory: body.working_directory,
        timeoutSeconds: body.timeout_seconds,
        secrets: body.env ? { env: body.env } : undefined,
        runId: body.run_id,
        runContext: body.run_context,
      },
      (created) => {
        registration = ctx.waiter.register(created.id);
      },
    );
    if (!registration) throw new Error("completion waiter was not registered");
    // Stop waiting (and free the waiter) if the client goes away.
    res.on("close", () => registration?.cancel());
    const final = await waitForOperation(ctx, op.id, registration, syncWaitMs(ctx, body.timeout_seconds));
    res.status(200).json(syncResponse(final));
  });
  return router;
}
