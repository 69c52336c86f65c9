import { Router } from "express";
import { FailureCause, FailureReason, OperationType, registryLoginRequestSchema, registryLogoutRequestSchema } from "@runbridge/contracts";
import { automationAuth } from "../../auth/locals";
import { assertCredentialAllowed, assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { ConflictError, NotFoundError, OperationNotStartedError } from "../../errors";
import { validateBody } from "../../middleware/validate";
import { assertRunnerConnected, failUndispatched, loadServerWithRunner, loadTargetServer, logoutTimeoutSeconds, runAndWait, startOperation } from "../../services/operations";
import { resolveRegistryType } from "../../services/registry-type";
import { syncResponse } from "../../services/serializers";
import { OPERATION_PATHS } from "./paths";

/**
 * POST /registry-auth/login (async, 202) and /registry-auth/logout (sync).
 * The password is opened here only to answer 409 at once if it cannot be; it
 * travels in no job: the dispatcher reads it from the credential when it
 * delivers the login (so a credential deleted meanwhile is not used), and the
 * runner writes it to docker's stdin. It is in no argv, row, audit entry or
 * log line.
 */
export function registryAuthRouter(ctx: GatewayContext): Router {
  const router = Router();

  router.post(OPERATION_PATHS[OperationType.RegistryLogin], async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.RegistryLogin);
    const body = validateBody(registryLoginRequestSchema, req.body);
    const server = await loadTargetServer(ctx, auth, body.server_id);
    const cred = await ctx.prisma.registryCredential.findFirst({ where: { id: body.credential_id, tenantId: auth.tenantId } });
    if (!cred) throw new NotFoundError(`Registry credential ${body.credential_id} not found`);
    assertCredentialAllowed(auth.key, cred.id);
    await assertRunnerConnected(ctx, server);

    try {
      ctx.sealer.open(cred.passwordCiphertext, cred.id);
    } catch {
      // A key retired without being listed in RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS (or a damaged row): say what to do.
      throw new ConflictError(
        `Registry credential ${cred.id} cannot be decrypted with the configured keys (it was sealed with key id ${ctx.sealer.keyIdOf(cred.passwordCiphertext) ?? "unknown"}); ` +
          "add that key to RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS or re-create the credential",
      );
    }
    const op = await startOperation(ctx, auth, {
      serverId: server.id,
      type: OperationType.RegistryLogin,
      command: `docker login ${cred.registryUrl} --username ${cred.username} --password-stdin`,
      params: { credential_id: cred.id, registry_url: cred.registryUrl, registry_type: cred.registryType, username: cred.username },
      timeoutSeconds: 60,
      runId: body.run_id,
      runContext: body.run_context,
    });
    res.status(202).json({ operation_id: op.id, status: op.status, registry_url: cred.registryUrl, registry_type: cred.registryType });
  });

  router.post(OPERATION_PATHS[OperationType.RegistryLogout], async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.RegistryLogout);
    const body = validateBody(registryLogoutRequestSchema, req.body);
    const { server, connected } = await loadServerWithRunner(ctx, auth, body.server_id);
    const input = {
      serverId: server.id,
      type: OperationType.RegistryLogout,
      command: `docker logout ${body.registry_url}`,
      params: { registry_url: body.registry_url, registry_type: resolveRegistryType(body.registry_url) },
      timeoutSeconds: logoutTimeoutSeconds(ctx),
      runId: body.run_id,
      runContext: body.run_context,
    };

    // A failed logout is still a completed operation with its exit code, HTTP 200 (the spec: warn, not error) — one
    // whose server has no runner to run it too (not the 409 other operations get): recorded, and ended at once as
    // not run (exit 125). Should it not end (PostgreSQL), it is queued, and fails at its delivery deadline.
    const final = await (connected
      ? runAndWait(ctx, auth, input, res)
      : startOperation(ctx, auth, input, async (created) => {
          if (await failUndispatched(ctx, created, FailureCause.RunnerOffline, FailureReason.RunnerOffline)) {
            throw new OperationNotStartedError(created.id, FailureReason.RunnerOffline);
          }
        })
    ).catch(async (err: unknown) => {
      // Recorded, then ended as failed because the queue was unreachable: that failed operation is
      // the answer, as for any other failed logout. Nothing recorded (PostgreSQL down) stays a 503.
      if (!(err instanceof OperationNotStartedError)) throw err;
      const failed = await ctx.operations.findById(err.operationId).catch(() => null);
      if (!failed) throw err;
      return failed;
    });
    res.status(200).json(syncResponse(final));
  });

  return router;
}
