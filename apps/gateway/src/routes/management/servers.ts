import { Router } from "express";
import { TokenKind, generateToken, hashToken } from "@runbridge/common";
import { createServerSchema, serverProviderLinkSchema, uuid } from "@runbridge/contracts";
import type { Server } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { NotFoundError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";
import { rotateRunnerToken } from "../../services/runner-token";
import { deleteServer } from "../../services/server-delete";
import { managementEvent } from "../../services/management-audit";

function serverView(s: Server, connected: boolean) {
  return {
    id: s.id,
    name: s.name,
    runner_connected: connected,
    last_seen_at: s.lastSeenAt?.toISOString() ?? null,
    // Reported by the runner as it last connected: which servers still run an older runner.
    runner_version: s.runnerVersion,
    // What keeps its runner from taking operations (a state directory it cannot write), as the runner last
    // said it, and since when: a runner that is connected but refuses everything is not a healthy one.
    runner_problem: s.runnerProblem,
    runner_problem_since: s.runnerProblemSince?.toISOString() ?? null,
    provider: s.provider,
    // The provider token is never returned; only whether one is stored.
    provider_server_id: s.providerServerId,
    provider_token_set: s.providerTokenCiphertext !== null,
    created_at: s.createdAt.toISOString(),
  };
}

/** The server `rawId` names in the caller's tenant, or a 404 (also when `rawId` is not a UUID). */
async function loadTenantServer(ctx: GatewayContext, tenantId: string, rawId: unknown): Promise<Server> {
  const notFound = () => new NotFoundError(`Server ${String(rawId)} not found`);
  const id = validateParam<string>(uuid(), rawId, notFound);
  const server = await ctx.prisma.server.findFirst({ where: { id, tenantId } });
  if (!server) throw notFound();
  return server;
}

export function serversRouter(ctx: GatewayContext): Router {
  const router = Router();

  router.post("/servers", async (req, res) => {
    const auth = managementAuth(res);
    const body = validateBody(createServerSchema, req.body);
    const runnerToken = generateToken(TokenKind.RunnerToken);
    // The runner token is shown once; only its hash is stored, and neither is in the audit event.
    const server = await ctx.prisma.$transaction(async (tx) => {
      const s = await tx.server.create({ data: { tenantId: auth.tenantId, name: body.name, runnerTokenHash: hashToken(runnerToken) } });
      await tx.auditEvent.create({ data: managementEvent(auth, "server.created", { server_name: s.name }, { serverId: s.id }) });
      return s;
    });
    res.status(201).json({ ...serverView(server, false), runner_token: runnerToken });
  });

  router.get("/servers", async (_req, res) => {
    const auth = managementAuth(res);
    const servers = await ctx.prisma.server.findMany({ where: { tenantId: auth.tenantId }, orderBy: { createdAt: "asc" } });
    const connected = await ctx.presence.connectedSet(servers.map((s) => s.id));
    res.json({ data: servers.map((s) => serverView(s, connected.has(s.id))) });
  });

  router.get("/servers/:id", async (req, res) => {
    const auth = managementAuth(res);
    const server = await loadTenantServer(ctx, auth.tenantId, req.params.id);
    res.json(serverView(server, await ctx.presence.isConnected(server.id)));
  });

  // Links the server to its cloud provider for reboots (or unlinks it with provider: null).
  router.patch("/servers/:id", async (req, res) => {
    const auth = managementAuth(res);
    const existing = await loadTenantServer(ctx, auth.tenantId, req.params.id);
    const body = validateBody(serverProviderLinkSchema, req.body);
    const server = await ctx.prisma.$transaction(async (tx) => {
      // The row as it is now, locked: the audit event's "previous" values and whether a token is replaced are
      // this change's, not those of a row another PATCH changed since it was read above.
      await tx.$queryRaw`SELECT id FROM servers WHERE id = ${existing.id}::uuid FOR UPDATE`;
      const current = await tx.server.findUnique({ where: { id: existing.id } });
      if (!current) throw new NotFoundError(`Server ${existing.id} not found`);
      const s = await tx.server.update({
        where: { id: existing.id },
        data: body.provider
          ? {
              provider: body.provider,
              providerServerId: body.provider_server_id ?? null,
              // Sealed with the server id as associated data: it opens for this server only.
              providerTokenCiphertext: ctx.sealer.seal(body.provider_token ?? "", existing.id),
            }
          : { provider: null, providerServerId: null, providerTokenCiphertext: null },
      });
      // The token itself never; whether this change put one in place of another (a replaced token is worth asking about).
      const hadToken = current.providerTokenCiphertext !== null;
      const givesToken = Boolean(body.provider && body.provider_token);
      const providerToken = givesToken ? (hadToken ? "replaced" : "set") : hadToken ? "removed" : "none";
      await tx.auditEvent.create({
        data: managementEvent(
          auth,
          "server.provider_linked",
          { provider: s.provider, provider_server_id: s.providerServerId, previous_provider: current.provider, previous_provider_server_id: current.providerServerId, provider_token: providerToken },
          { serverId: s.id },
        ),
      });
      return s;
    });
    res.json(serverView(server, await ctx.presence.isConnected(server.id)));
  });

  // A new runner token, shown once; the old one stops working and its connections are dropped (after a suspected leak).
  router.post("/servers/:id/runner-token", async (req, res) => {
    const auth = managementAuth(res);
    const server = await loadTenantServer(ctx, auth.tenantId, req.params.id);
    const runnerToken = await rotateRunnerToken(ctx, auth, server);
    res.json({ id: server.id, name: server.name, runner_token: runnerToken });
  });

  // Decommissioning: the server, its operations, applications and deployments; its runner is disconnected and stops.
  router.delete("/servers/:id", async (req, res) => {
    const auth = managementAuth(res);
    const server = await loadTenantServer(ctx, auth.tenantId, req.params.id);
    await deleteServer(ctx, auth, server);
    res.status(204).end();
  });

  return router;
}
