import { Router } from "express";
import { TokenKind, generateToken, hashToken } from "@runbridge/common";
import { createServerSchema, uuid } from "@runbridge/contracts";
import type { Server } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { NotFoundError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";

function serverView(s: Server, connected: boolean) {
  return {
    id: s.id,
    name: s.name,
    runner_connected: connected,
    last_seen_at: s.lastSeenAt?.toISOString() ?? null,
    provider: s.provider,
    created_at: s.createdAt.toISOString(),
  };
}

export function serversRouter(ctx: GatewayContext): Router {
  const router = Router();

  router.post("/servers", async (req, res) => {
    const auth = managementAuth(res);
    const body = validateBody(createServerSchema, req.body);
    const runnerToken = generateToken(TokenKind.RunnerToken);
    const server = await ctx.prisma.server.create({ data: { tenantId: auth.tenantId, name: body.name, runnerTokenHash: hashToken(runnerToken) } });
    // The runner token is shown once; only its hash is stored.
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
    const notFound = () => new NotFoundError(`Server ${String(req.params.id)} not found`);
    const id = validateParam<string>(uuid(), req.params.id, notFound);
    const server = await ctx.prisma.server.findFirst({ where: { id, tenantId: auth.tenantId } });
    if (!server) throw notFound();
    res.json(serverView(server, await ctx.presence.isConnected(server.id)));
  });

  return router;
}
