import { randomUUID } from "node:crypto";
import { TokenKind, displayPrefix, generateToken, hashToken } from "@runbridge/common";
import type { AutomationKey, Operation, Prisma, Server, Tenant } from "@runbridge/db";
import { testPrisma } from "./db";

/** Every factory makes fresh rows in a fresh tenant, so tests share one database safely. */

export async function createTenant(name = `tenant-${randomUUID().slice(0, 8)}`): Promise<{ tenant: Tenant; apiKey: string }> {
  const apiKey = generateToken(TokenKind.ApiKey);
  const tenant = await testPrisma().tenant.create({
    data: { name, apiKeys: { create: { name: "test", keyHash: hashToken(apiKey), prefix: displayPrefix(apiKey) } } },
  });
  return { tenant, apiKey };
}

export async function createServer(tenantId: string, name = `server-${randomUUID().slice(0, 8)}`): Promise<{ server: Server; runnerToken: string }> {
  const runnerToken = generateToken(TokenKind.RunnerToken);
  const server = await testPrisma().server.create({ data: { tenantId, name, runnerTokenHash: hashToken(runnerToken) } });
  return { server, runnerToken };
}

export async function createAutomationKey(
  tenantId: string,
  scopes: Partial<Pick<AutomationKey, "allowedServerIds" | "allowedOperations" | "allowedCredentialIds" | "ipAllowlist" | "rateLimit" | "expiresAt" | "revokedAt">> = {},
): Promise<{ key: AutomationKey; token: string }> {
  const token = generateToken(TokenKind.AutomationKey);
  const key = await testPrisma().automationKey.create({
    data: { tenantId, name: `key-${randomUUID().slice(0, 8)}`, keyHash: hashToken(token), prefix: displayPrefix(token), ...scopes },
  });
  return { key, token };
}

/** A tenant with one server and an unscoped automation key: the common starting point. */
export async function createFixture(): Promise<{ tenant: Tenant; apiKey: string; server: Server; runnerToken: string; key: AutomationKey; token: string }> {
  const { tenant, apiKey } = await createTenant();
  const { server, runnerToken } = await createServer(tenant.id);
  const { key, token } = await createAutomationKey(tenant.id);
  return { tenant, apiKey, server, runnerToken, key, token };
}

/**
 * An operation row written straight to the database, as if a gateway had accepted it.
 * It carries a Redis prefix no deployment uses: a dispatcher's sweeper (from any test
 * running alongside) would otherwise adopt a "running" fixture row, re-enqueue it and
 * keep retrying it against a runner that never comes.
 */
export async function createOperation(
  tenantId: string,
  serverId: string,
  fields: Partial<Omit<Prisma.OperationUncheckedCreateInput, "tenantId" | "serverId">> = {},
): Promise<Operation> {
  return testPrisma().operation.create({
    data: {
      tenantId,
      serverId,
      type: "exec",
      command: "true",
      timeoutSeconds: 60,
      deliverBy: new Date(Date.now() + 60_000),
      redisPrefix: "test-fixture-no-dispatcher",
      ...fields,
    },
  });
}
