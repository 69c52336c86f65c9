import { Router } from "express";
import { OperationType, execRequestSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { validateBody } from "../../middleware/validate";
import { loadConnectedServer, runAndWait } from "../../services/operations";
import { syncResponse } from "../../services/serializers";
import { OPERATION_PATHS } from "./paths";

/** POST /exec: run a shell command; answers with the result if it ends within the wait bound. */
export function execRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post(OPERATION_PATHS[OperationType.Exec], async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Exec);
    const body = validateBody(execRequestSchema, req.body);
    const server = await loadConnectedServer(ctx, auth, body.server_id);

    const final = await runAndWait(
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
      res,
    );
    res.status(200).json(syncResponse(final));
  });
  return router;
}
