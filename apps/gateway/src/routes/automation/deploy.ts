import { randomUUID } from "node:crypto";
import { Router } from "express";
import { FailureCause, OperationType, deployEnvOverrideRefusal, deployRequestSchema } from "@runbridge/contracts";
import { readEnvAllowlist, type Application, type Operation } from "@runbridge/db";
import { automationAuth } from "../../auth/locals";
import { assertOperationAllowed } from "../../auth/scopes";
import type { GatewayContext } from "../../context";
import { ConflictError, NotFoundError, ServiceUnavailableError, ValidationError } from "../../errors";
import { validateBody } from "../../middleware/validate";
import { ENQUEUE_WHEN_SETTLED, assertRunnerConnected, failUndispatched, loadTargetServer, startOperation } from "../../services/operations";
import { OPERATION_PATHS } from "./paths";

/** An update of the application committed between the deploy's read of it and its record. */
class ApplicationChangedError extends Error {
  constructor(
    readonly application: Application,
    readonly fields: string[],
  ) {
    super(`application ${application.id} changed (${fields.join(", ")}) while a deploy of it was accepted`);
  }
}

/**
 * The fields a deploy's operation was made from that differ now, by their API names. Not
 * allowed_env_overrides: the dispatcher checks the overrides against the application as it is when
 * it first hands the deploy over (a narrowing while the deploy waits its turn must count too).
 */
function changedSinceRead(read: Application, now: Application, branchUsed: boolean): string[] {
  return [
    read.serverId !== now.serverId && "server_id",
    read.workingDirectory !== now.workingDirectory && "working_directory",
    read.deployCommand !== now.deployCommand && "deploy_command",
    branchUsed && read.deployBranch !== now.deployBranch && "deploy_branch",
  ].filter((f): f is string => typeof f === "string");
}

/**
 * Stamps the deployment under a lock on its application row, strictly after
 * every earlier deployment of the application: the dispatcher lets a deploy
 * run only once every earlier one has ended, so this order must be total and
 * match commit order (see apps/dispatcher/src/deploy-turn.ts).
 */
async function recordDeployment(ctx: GatewayContext, op: Operation, deploymentId: string, read: Application, commitRef: string, branchUsed: boolean): Promise<void> {
  const applicationId = read.id;
  await ctx.prisma.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM applications WHERE id = ${applicationId}::uuid FOR UPDATE`;
    if (locked.length === 0) throw new Error(`application ${applicationId} vanished while deploying`);
    // The operation was made from the application as read before this lock; an update (which takes the same
    // lock) committed since then would otherwise be overtaken by this deploy: the old command, or a name the
    // allowlist no longer has, run after the change that removed it; or on the server it was moved from.
    const current = await tx.application.findUniqueOrThrow({ where: { id: applicationId } });
    const changed = changedSinceRead(read, current, branchUsed);
    if (changed.length > 0) throw new ApplicationChangedError(read, changed);
    // A statement of its own, after the lock: its snapshot sees the deployment of whoever held the
    // lock before. Read in the locking statement, the latest stamp came from a snapshot taken before
    // the wait, and two deploys in a burst could get the same one.
    const [row] = await tx.$queryRaw<{ at: Date }[]>`
      SELECT GREATEST(
        clock_timestamp(),
        (SELECT max(created_at) + interval '1 millisecond' FROM deployments WHERE application_id = ${applicationId}::uuid)
      ) AS at`;
    if (!row) throw new Error(`application ${applicationId}: no deployment stamp`);
    await tx.deployment.create({ data: { id: deploymentId, applicationId, operationId: op.id, commitRef, createdAt: row.at } });
  });
}

/** POST /deploy: runs the application's deploy command on its server; always answers 202 at once. */
export function deployRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.post(OPERATION_PATHS[OperationType.Deploy], async (req, res) => {
    const auth = automationAuth(res);
    assertOperationAllowed(auth.key, OperationType.Deploy);
    const body = validateBody(deployRequestSchema, req.body);
    const app = await ctx.prisma.application.findFirst({ where: { id: body.application_id, tenantId: auth.tenantId } });
    if (!app) throw new NotFoundError(`Application ${body.application_id} not found`);
    const server = await loadTargetServer(ctx, auth, app.serverId);
    // A deploy key may only start the app's fixed command: no override that changes how its programs
    // start, and only the names the application allows when it lists them.
    const refusal = deployEnvOverrideRefusal(Object.keys(body.env_overrides ?? {}), readEnvAllowlist(app.allowedEnvOverrides));
    if (refusal) throw new ValidationError(refusal);
    await assertRunnerConnected(ctx, server);

    const commitRef = body.commit_ref ?? app.deployBranch;
    const deploymentId = randomUUID();
    const op = await startOperation(
      ctx,
      auth,
      {
        serverId: server.id,
        type: OperationType.Deploy,
        command: app.deployCommand,
        params: { application_id: app.id, application_name: app.name, deployment_id: deploymentId, commit_ref: commitRef },
        workingDirectory: app.workingDirectory,
        timeoutSeconds: body.timeout_seconds,
        // Overrides are ephemeral: sealed in the job, only their names stored.
        secrets: body.env_overrides ? { env: body.env_overrides } : undefined,
        runId: body.run_id,
        runContext: body.run_context,
      },
      async (created) => {
        try {
          await recordDeployment(ctx, created, deploymentId, app, commitRef, body.commit_ref === undefined);
        } catch (err) {
          if (err instanceof ApplicationChangedError) {
            ctx.logger.info("refused a deploy: its application changed while it was accepted", { operationId: created.id, applicationId: app.id, changed: err.fields });
            // Not enqueued and no deployment row: if it cannot be ended now, the dispatcher ends it on delivery.
            if (!(await failUndispatched(ctx, created, FailureCause.ApplicationChanged, `not started: the application changed (${err.fields.join(", ")}) while the deploy was accepted`))) {
              return ENQUEUE_WHEN_SETTLED;
            }
            throw new ConflictError(
              `Application "${app.name}" (${app.id}) was changed (${err.fields.join(", ")}) while this deploy was being accepted; nothing was started. Retry to deploy it as it is now.`,
            );
          }
          // Not enqueued yet, so nothing can run it: ended here when PostgreSQL lets us. Otherwise the
          // deployment may well exist (its commit's answer lost) and "nothing was started" would be a
          // guess a retry turns into a second deploy: accepted, its job held back until the write has
          // settled; the dispatcher delivers it when its deployment row exists and ends it
          // (deployment_not_recorded) when not.
          ctx.logger.error("could not record a deployment", { operationId: created.id, error: String(err) });
          if (!(await failUndispatched(ctx, created, FailureCause.DeploymentNotRecorded, "the deployment could not be recorded"))) return ENQUEUE_WHEN_SETTLED;
          throw new ServiceUnavailableError("The deployment could not be recorded; nothing was started. Retry shortly.");
        }
      },
    );
    res.status(202).json({ operation_id: op.id, status: op.status, deployment_id: deploymentId });
  });
  return router;
}
