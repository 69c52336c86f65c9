import { Router } from "express";
import { createApplicationSchema, updateApplicationSchema, uuid } from "@runbridge/contracts";
import { envAllowlistData, readEnvAllowlist, type Application, type Deployment, type Operation } from "@runbridge/db";
import { managementAuth, type ManagementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { ConflictError, NotFoundError, ValidationError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";
import { managementEvent } from "../../services/management-audit";

/** An application's audit event: its id and name, on its server. */
function auditData(auth: ManagementAuth, type: string, app: Application, data: Record<string, unknown> = {}) {
  return managementEvent(auth, type, { application_id: app.id, name: app.name, ...data }, { serverId: app.serverId });
}

export function applicationView(a: Application) {
  return {
    id: a.id,
    name: a.name,
    server_id: a.serverId,
    working_directory: a.workingDirectory,
    deploy_branch: a.deployBranch,
    deploy_command: a.deployCommand,
    allowed_env_overrides: readEnvAllowlist(a.allowedEnvOverrides),
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString(),
  };
}

function deploymentView(d: Deployment & { operation: Pick<Operation, "status" | "exitCode" | "startedAt" | "completedAt"> }) {
  return {
    id: d.id,
    application_id: d.applicationId,
    operation_id: d.operationId,
    commit_ref: d.commitRef,
    status: d.operation.status,
    exit_code: d.operation.exitCode,
    created_at: d.createdAt.toISOString(),
    started_at: d.operation.startedAt?.toISOString() ?? null,
    completed_at: d.operation.completedAt?.toISOString() ?? d.completedAt?.toISOString() ?? null,
  };
}

/** Applications (what /deploy deploys) and their deployment history. */
export function applicationsRouter(ctx: GatewayContext): Router {
  const router = Router();
  const load = async (tenantId: string, raw: unknown) => {
    const notFound = () => new NotFoundError(`Application ${String(raw)} not found`);
    const id = validateParam<string>(uuid(), raw, notFound);
    const app = await ctx.prisma.application.findFirst({ where: { id, tenantId } });
    if (!app) throw notFound();
    return app;
  };
  const assertOwnServer = async (tenantId: string, serverId: string) => {
    const n = await ctx.prisma.server.count({ where: { id: serverId, tenantId } });
    if (n !== 1) throw new ValidationError(`"server_id" ${serverId} is not a server of this tenant`);
  };
  router.post("/applications", async (req, res) => {
    const auth = managementAuth(res);
    const body = validateBody(createApplicationSchema, req.body);
    await assertOwnServer(auth.tenantId, body.server_id);
    // The change and its audit event commit together: no application exists without its record.
    const app = await ctx.prisma.$transaction(async (tx) => {
      const created = await tx.application.create({
        data: {
          tenantId: auth.tenantId,
          serverId: body.server_id,
          name: body.name,
          workingDirectory: body.working_directory,
          deployBranch: body.deploy_branch,
          deployCommand: body.deploy_command,
          allowedEnvOverrides: envAllowlistData(body.allowed_env_overrides),
        },
      });
      // Who widened or narrowed what a deploy key may pass to the deploy command is worth a record.
      await tx.auditEvent.create({ data: auditData(auth, "application.created", created, { allowed_env_overrides: body.allowed_env_overrides }) });
      return created;
    });
    res.status(201).json(applicationView(app));
  });

  router.get("/applications", async (_req, res) => {
    const auth = managementAuth(res);
    const apps = await ctx.prisma.application.findMany({ where: { tenantId: auth.tenantId }, orderBy: { createdAt: "asc" } });
    res.json({ data: apps.map(applicationView) });
  });

  router.get("/applications/:id", async (req, res) => {
    const auth = managementAuth(res);
    res.json(applicationView(await load(auth.tenantId, req.params.id)));
  });

  router.patch("/applications/:id", async (req, res) => {
    const auth = managementAuth(res);
    const existing = await load(auth.tenantId, req.params.id);
    const body = validateBody(updateApplicationSchema, req.body);
    if (body.server_id !== undefined) await assertOwnServer(auth.tenantId, body.server_id);
    const app = await ctx.prisma.$transaction(async (tx) => {
      // The row as it is now, locked: of two updates at once, each event's "before" is what that one changed
      // (read before the transaction, both said the value from before either).
      await tx.$queryRaw`SELECT id FROM applications WHERE id = ${existing.id}::uuid FOR UPDATE`;
      const current = await tx.application.findUniqueOrThrow({ where: { id: existing.id } });
      // Deploys in progress or waiting their turn were made for the server it is on: moved now, the waiting ones
      // would run there after the move, and the next deploy on the new server beside the one still running.
      if (body.server_id !== undefined && body.server_id !== current.serverId) {
        const running = await tx.deployment.count({ where: { applicationId: current.id, operation: { status: "running" } } });
        if (running > 0) {
          throw new ConflictError(
            `Application "${current.name}" (${current.id}) has ${running} deployment${running === 1 ? "" : "s"} in progress or waiting on its server; move it to another server once ${running === 1 ? "it has" : "they have"} ended`,
          );
        }
      }
      const updated = await tx.application.update({
        where: { id: existing.id },
        data: {
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(body.server_id !== undefined ? { serverId: body.server_id } : {}),
          ...(body.working_directory !== undefined ? { workingDirectory: body.working_directory } : {}),
          ...(body.deploy_branch !== undefined ? { deployBranch: body.deploy_branch } : {}),
          ...(body.deploy_command !== undefined ? { deployCommand: body.deploy_command } : {}),
          ...(body.allowed_env_overrides !== undefined ? { allowedEnvOverrides: envAllowlistData(body.allowed_env_overrides) } : {}),
        },
      });
      // What a deploy runs, where, and with what is the record's point: each changed field as it was and as it is.
      const changes = Object.keys(body) as (keyof ReturnType<typeof applicationView>)[];
      const [was, now] = [applicationView(current), applicationView(updated)];
      const allowance = body.allowed_env_overrides !== undefined ? { allowed_env_overrides: body.allowed_env_overrides } : {};
      await tx.auditEvent.create({
        data: auditData(auth, "application.updated", updated, {
          changes,
          before: Object.fromEntries(changes.map((k) => [k, was[k]])),
          after: Object.fromEntries(changes.map((k) => [k, now[k]])),
          ...allowance,
        }),
      });
      return updated;
    });
    res.json(applicationView(app));
  });

  router.delete("/applications/:id", async (req, res) => {
    const auth = managementAuth(res);
    const app = await load(auth.tenantId, req.params.id);
    await ctx.prisma.$transaction(async (tx) => {
      // The lock a deploy takes to record itself: one being recorded now is either counted below or
      // finds the application gone. Deploys waiting their turn go by the application's deployments,
      // which go with it — deleted now, they would all run at once.
      const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM applications WHERE id = ${app.id}::uuid FOR UPDATE`;
      // Found a moment ago: another delete committed in between.
      if (locked.length === 0) throw new NotFoundError(`Application ${app.id} not found: it was deleted by another request while this one was handled`);
      const running = await tx.deployment.count({ where: { applicationId: app.id, operation: { status: "running" } } });
      if (running > 0) {
        throw new ConflictError(
          `Application "${app.name}" (${app.id}) has ${running} deployment${running === 1 ? "" : "s"} in progress or waiting; cancel ${running === 1 ? "it" : "them"} or wait for ${running === 1 ? "it" : "them"} to end, then delete the application`,
        );
      }
      await tx.application.delete({ where: { id: app.id } });
      await tx.auditEvent.create({ data: auditData(auth, "application.deleted", app) });
    });
    res.status(204).end();
  });

  router.get("/applications/:id/deployments", async (req, res) => {
    const auth = managementAuth(res);
    const app = await load(auth.tenantId, req.params.id);
    const rows = await ctx.prisma.deployment.findMany({
      where: { applicationId: app.id },
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: 100,
      include: { operation: { select: { status: true, exitCode: true, startedAt: true, completedAt: true } } },
    });
    res.json({ data: rows.map(deploymentView) });
  });

  return router;
}
