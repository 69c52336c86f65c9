import { randomUUID } from "node:crypto";
import { Router } from "express";
import { createRegistryCredentialSchema, uuid } from "@runbridge/contracts";
import type { RegistryCredential } from "@runbridge/db";
import { managementAuth } from "../../auth/locals";
import type { GatewayContext } from "../../context";
import { NotFoundError } from "../../errors";
import { validateBody, validateParam } from "../../middleware/validate";
import { resolveRegistryType } from "../../services/registry-type";
import { managementEvent } from "../../services/management-audit";

/** Never the password, nor its ciphertext: only the id of the key that sealed it. */
export function registryCredentialView(c: RegistryCredential, keyIdOf: (envelope: string) => string | undefined) {
  return {
    id: c.id,
    name: c.name,
    registry_url: c.registryUrl,
    registry_type: c.registryType,
    username: c.username,
    encryption_key_id: keyIdOf(c.passwordCiphertext) ?? null,
    created_at: c.createdAt.toISOString(),
  };
}

export function registryCredentialsRouter(ctx: GatewayContext): Router {
  const router = Router();
  const view = (c: RegistryCredential) => registryCredentialView(c, (e) => ctx.sealer.keyIdOf(e));
  const load = async (tenantId: string, raw: unknown) => {
    const notFound = () => new NotFoundError(`Registry credential ${String(raw)} not found`);
    const id = validateParam<string>(uuid(), raw, notFound);
    const cred = await ctx.prisma.registryCredential.findFirst({ where: { id, tenantId } });
    if (!cred) throw notFound();
    return cred;
  };

  router.post("/registry-credentials", async (req, res) => {
    const auth = managementAuth(res);
    const body = validateBody(createRegistryCredentialSchema, req.body);
    // The id is the envelope's associated data: a ciphertext copied onto another row does not open.
    const id = randomUUID();
    const cred = await ctx.prisma.$transaction(async (tx) => {
      const c = await tx.registryCredential.create({
        data: {
          id,
          tenantId: auth.tenantId,
          name: body.name,
          registryUrl: body.registry_url,
          registryType: resolveRegistryType(body.registry_url),
          username: body.username,
          passwordCiphertext: ctx.sealer.seal(body.password, id),
        },
      });
      await tx.auditEvent.create({
        data: managementEvent(auth, "registry_credential.created", { credential_id: c.id, name: c.name, registry_url: c.registryUrl, registry_type: c.registryType }),
      });
      return c;
    });
    res.status(201).json(view(cred));
  });

  router.get("/registry-credentials", async (_req, res) => {
    const auth = managementAuth(res);
    const creds = await ctx.prisma.registryCredential.findMany({ where: { tenantId: auth.tenantId }, orderBy: { createdAt: "asc" } });
    res.json({ data: creds.map(view) });
  });

  router.get("/registry-credentials/:id", async (req, res) => {
    const auth = managementAuth(res);
    res.json(view(await load(auth.tenantId, req.params.id)));
  });

  router.delete("/registry-credentials/:id", async (req, res) => {
    const auth = managementAuth(res);
    const cred = await load(auth.tenantId, req.params.id);
    await ctx.prisma.$transaction(async (tx) => {
      await tx.registryCredential.delete({ where: { id: cred.id } });
      await tx.auditEvent.create({ data: managementEvent(auth, "registry_credential.deleted", { credential_id: cred.id, name: cred.name, registry_url: cred.registryUrl }) });
    });
    res.status(204).end();
  });

  return router;
}
