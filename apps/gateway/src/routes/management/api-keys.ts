import { Router } from "express";
import { TokenKind, displayPrefix, generateToken, hashToken } from "@runbridge/common";
import { createApiKeySchema, uuid } from "@runbridge/contracts";
import type { ApiKey } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { NotFoundError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";
import { managementEvent } from "../../services/management-audit";

function apiKeyView(k: ApiKey, currentKeyId: string) {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    status: k.revokedAt ? "revoked" : "active",
    created_at: k.createdAt.toISOString(),
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    revoked_at: k.revokedAt?.toISOString() ?? null,
    /** The key this request was made with (revoking it ends this session). */
    current: k.id === currentKeyId,
  };
}

/** General API keys (rbk_...): management API and dashboard sign-in. Shown once, stored as SHA-256 only. */
export function apiKeysRouter(ctx: GatewayContext): Router {
  const router = Router();

  router.get("/api-keys", async (_req, res) => {
    const auth = managementAuth(res);
    const keys = await ctx.prisma.apiKey.findMany({ where: { tenantId: auth.tenantId }, orderBy: { createdAt: "desc" } });
    res.json({ data: keys.map((k) => apiKeyView(k, auth.apiKeyId)) });
  });

  router.post("/api-keys", async (req, res) => {
    const auth = managementAuth(res);
    const body = validateBody(createApiKeySchema, req.body);
    const token = generateToken(TokenKind.ApiKey);
    const key = await ctx.prisma.$transaction(async (tx) => {
      const k = await tx.apiKey.create({ data: { tenantId: auth.tenantId, name: body.name, keyHash: hashToken(token), prefix: displayPrefix(token) } });
      await tx.auditEvent.create({ data: managementEvent(auth, "api_key.created", { api_key_id: k.id, name: k.name, prefix: k.prefix }) });
      return k;
    });
    res.status(201).json({ ...apiKeyView(key, auth.apiKeyId), key: token });
  });

  router.delete("/api-keys/:id", async (req, res) => {
    const auth = managementAuth(res);
    const notFound = () => new NotFoundError(`API key ${String(req.params.id)} not found`);
    const id = validateParam<string>(uuid(), req.params.id, notFound);
    const existing = await ctx.prisma.apiKey.findFirst({ where: { id, tenantId: auth.tenantId } });
    if (!existing) throw notFound();
    const key = await ctx.prisma.$transaction(async (tx) => {
      // By PostgreSQL's clock, and once: of two revocations at the same moment, one revokes (and is audited).
      const revoked = await tx.$executeRaw`UPDATE api_keys SET revoked_at = now() WHERE id = ${id}::uuid AND revoked_at IS NULL`;
      if (revoked === 1) {
        await tx.auditEvent.create({ data: managementEvent(auth, "api_key.revoked", { api_key_id: id, name: existing.name }) });
      }
      return tx.apiKey.findUniqueOrThrow({ where: { id } });
    });
    res.json(apiKeyView(key, auth.apiKeyId));
  });

  return router;
}
