import { Router } from "express";
import { TokenKind, displayPrefix, generateToken, hashToken } from "@runbridge/common";
import { Limits, createAutomationKeySchema, updateAutomationKeySchema, uuid, type CreateAutomationKeyRequest } from "@runbridge/contracts";
import type { AutomationKey, Prisma } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { ConflictError, NotFoundError, ValidationError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";
import { normaliseAllowlistEntry } from "../../services/ip-allowlist";
import { publishKeyChange } from "../../services/key-events";
import { managementEvent } from "../../services/management-audit";

export function keyStatus(k: Pick<AutomationKey, "revokedAt" | "expiresAt">, now = Date.now()): "active" | "revoked" | "expired" {
  if (k.revokedAt) return "revoked";
  if (k.expiresAt && k.expiresAt.getTime() <= now) return "expired";
  return "active";
}

export function automationKeyView(k: AutomationKey, operationCount?: number) {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    status: keyStatus(k),
    allowed_server_ids: k.allowedServerIds,
    allowed_operations: k.allowedOperations,
    allowed_credential_ids: k.allowedCredentialIds,
    ip_allowlist: k.ipAllowlist,
    rate_limit: k.rateLimit,
    expires_at: k.expiresAt?.toISOString() ?? null,
    revoked_at: k.revokedAt?.toISOString() ?? null,
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    last_used_ip: k.lastUsedIp,
    created_at: k.createdAt.toISOString(),
    updated_at: k.updatedAt.toISOString(),
    ...(operationCount === undefined ? {} : { operation_count: operationCount }),
  };
}

/**
 * Every id must name a row of the caller's tenant. Another tenant's id and an
 * id that does not exist get the same answer, so the API does not reveal
 * which ids exist in other tenants.
 */
function assertAllOwned(field: string, what: string, ids: readonly string[], owned: readonly { id: string }[]): void {
  const mine = new Set(owned.map((r) => r.id));
  const i = ids.findIndex((id) => !mine.has(id));
  if (i !== -1) throw new ValidationError(`"${field}[${i}]" (${ids[i]}) is a cross-tenant reference or an unknown ${what}`);
}

const held = (ids: readonly string[] | undefined) => (ids ?? []).map((id) => ({ id }));

/**
 * Validates scope fields beyond their shape: tenant ownership of ids, IP syntax, expiry in the future.
 * Ids the key already holds are not checked again: their server or credential may have been deleted
 * since, and an edit that sends the list back unchanged (as the dashboard does) must not fail on them.
 */
async function scopeData(ctx: GatewayContext, tenantId: string, body: Partial<CreateAutomationKeyRequest>, existing?: AutomationKey): Promise<Prisma.AutomationKeyUpdateInput> {
  const data: Prisma.AutomationKeyUpdateInput = {};
  if (body.name !== undefined) data.name = body.name;
  if (body.allowed_server_ids !== undefined) {
    // Ids arrive as PostgreSQL spells them (the uuid schema), so they compare as text with the rows'.
    const ids = body.allowed_server_ids;
    const owned = await ctx.prisma.server.findMany({ where: { tenantId, id: { in: ids } }, select: { id: true } });
    assertAllOwned("allowed_server_ids", "server", ids, [...owned, ...held(existing?.allowedServerIds)]);
    data.allowedServerIds = ids;
  }
  if (body.allowed_credential_ids !== undefined) {
    const ids = body.allowed_credential_ids;
    const owned = await ctx.prisma.registryCredential.findMany({ where: { tenantId, id: { in: ids } }, select: { id: true } });
    assertAllOwned("allowed_credential_ids", "registry credential", ids, [...owned, ...held(existing?.allowedCredentialIds)]);
    data.allowedCredentialIds = ids;
  }
  if (body.allowed_operations !== undefined) data.allowedOperations = body.allowed_operations;
  if (body.ip_allowlist !== undefined) {
    data.ipAllowlist = body.ip_allowlist.map((e, i) => {
      const n = normaliseAllowlistEntry(e);
      if (!n) throw new ValidationError(`"ip_allowlist[${i}]" is not an IP address or CIDR range: ${JSON.stringify(e)}`);
      return n;
    });
  }
  if (body.rate_limit !== undefined) data.rateLimit = body.rate_limit;
  if (body.expires_at !== undefined) {
    if (body.expires_at === null) data.expiresAt = null;
    else {
      const at = new Date(body.expires_at);
      if (at.getTime() <= Date.now()) throw new ValidationError('"expires_at" must be in the future');
      data.expiresAt = at;
    }
  }
  return data;
}

/** Before and after of each field a PATCH named, as the API shows them. */
function changesOf(before: AutomationKey, after: AutomationKey, fields: string[]): Prisma.InputJsonObject {
  const b = automationKeyView(before) as Record<string, Prisma.InputJsonValue | null>;
  const a = automationKeyView(after) as Record<string, Prisma.InputJsonValue | null>;
  return Object.fromEntries(fields.map((f) => [f, { from: b[f] ?? null, to: a[f] ?? null }]));
}

export function automationKeysRouter(ctx: GatewayContext): Router {
  const router = Router();
  const loadKey = async (tenantId: string, raw: unknown) => {
    const notFound = () => new NotFoundError(`Automation key ${String(raw)} not found`);
    const id = validateParam<string>(uuid(), raw, notFound);
    const key = await ctx.prisma.automationKey.findFirst({ where: { id, tenantId } });
    if (!key) throw notFound();
    return key;
  };

  router.post("/automation-keys", async (req, res) => {
    const auth = managementAuth(res);
    const body = validateBody(createAutomationKeySchema, req.body);
    const data = await scopeData(ctx, auth.tenantId, body);
    const token = generateToken(TokenKind.AutomationKey);
    const key = await ctx.prisma.$transaction(async (tx) => {
      const k = await tx.automationKey.create({
        data: {
          tenantId: auth.tenantId,
          name: body.name,
          keyHash: hashToken(token),
          prefix: displayPrefix(token),
          allowedServerIds: (data.allowedServerIds as string[] | undefined) ?? [],
          allowedOperations: (data.allowedOperations as string[] | undefined) ?? [],
          allowedCredentialIds: (data.allowedCredentialIds as string[] | undefined) ?? [],
          ipAllowlist: (data.ipAllowlist as string[] | undefined) ?? [],
          rateLimit: body.rate_limit ?? Limits.rateLimitDefault,
          expiresAt: (data.expiresAt as Date | null | undefined) ?? null,
        },
      });
      await tx.auditEvent.create({ data: managementEvent(auth, "key.created", automationKeyView(k), { automationKeyId: k.id }) });
      return k;
    });
    // Drops a "no such key" another replica may have cached for this hash.
    await publishKeyChange(ctx, key.keyHash);
    // The key itself is returned only here; only its SHA-256 is stored.
    res.status(201).json({ ...automationKeyView(key, 0), key: token });
  });

  router.get("/automation-keys", async (_req, res) => {
    const auth = managementAuth(res);
    const keys = await ctx.prisma.automationKey.findMany({ where: { tenantId: auth.tenantId }, orderBy: { createdAt: "desc" } });
    const counts = await ctx.operationCounts.get(keys.map((k) => k.id));
    res.json({ data: keys.map((k) => automationKeyView(k, counts.get(k.id) ?? 0)) });
  });

  router.get("/automation-keys/:id", async (req, res) => {
    const auth = managementAuth(res);
    const key = await loadKey(auth.tenantId, req.params.id);
    const counts = await ctx.operationCounts.get([key.id]);
    res.json(automationKeyView(key, counts.get(key.id) ?? 0));
  });

  router.patch("/automation-keys/:id", async (req, res) => {
    const auth = managementAuth(res);
    const existing = await loadKey(auth.tenantId, req.params.id);
    const body = validateBody(updateAutomationKeySchema, req.body);
    // Revocation is final: a revoked key is never brought back by an update.
    if (existing.revokedAt) throw new ConflictError(`Automation key ${existing.id} is revoked and can no longer be changed; create a new key`);
    const data = await scopeData(ctx, auth.tenantId, body, existing);
    const key = await ctx.prisma.$transaction(async (tx) => {
      // The row as it is now, locked: a revocation or another update that committed since it was read
      // above is seen (a revoked key is not changed; the audit event's "from" values are what this changed).
      await tx.$queryRaw`SELECT id FROM automation_keys WHERE id = ${existing.id}::uuid FOR UPDATE`;
      const current = await tx.automationKey.findUniqueOrThrow({ where: { id: existing.id } });
      if (current.revokedAt) throw new ConflictError(`Automation key ${existing.id} is revoked and can no longer be changed; create a new key`);
      const k = await tx.automationKey.update({ where: { id: existing.id }, data });
      await tx.auditEvent.create({ data: managementEvent(auth, "key.updated", { changes: changesOf(current, k, Object.keys(body)) }, { automationKeyId: k.id }) });
      return k;
    });
    await publishKeyChange(ctx, key.keyHash);
    const counts = await ctx.operationCounts.get([key.id]);
    res.json(automationKeyView(key, counts.get(key.id) ?? 0));
  });

  router.delete("/automation-keys/:id", async (req, res) => {
    const auth = managementAuth(res);
    const existing = await loadKey(auth.tenantId, req.params.id);
    const key = await ctx.prisma.$transaction(async (tx) => {
      // By PostgreSQL's clock, and once: of two revocations at the same moment, one revokes (and is audited).
      const revoked = await tx.$executeRaw`UPDATE automation_keys SET revoked_at = now(), updated_at = now() WHERE id = ${existing.id}::uuid AND revoked_at IS NULL`;
      if (revoked === 1) {
        await tx.auditEvent.create({ data: managementEvent(auth, "key.revoked", {}, { automationKeyId: existing.id }) });
      }
      return tx.automationKey.findUniqueOrThrow({ where: { id: existing.id } });
    });
    await publishKeyChange(ctx, key.keyHash);
    res.json(automationKeyView(key));
  });

  return router;
}
