import type { AutomationKey, Prisma } from "@runbridge/db";
import type { OperationType } from "@runbridge/contracts";
import { ScopeError } from "../errors";

/** Scope checks of an automation key; empty lists mean "all", as the spec says. */
export function assertOperationAllowed(key: AutomationKey, op: OperationType): void {
  if (key.allowedOperations.length > 0 && !key.allowedOperations.includes(op)) {
    throw new ScopeError("operation", `Operation "${op}" is not allowed for this API key`);
  }
}

export function assertServerAllowed(key: AutomationKey, serverId: string): void {
  if (key.allowedServerIds.length > 0 && !key.allowedServerIds.includes(serverId)) {
    throw new ScopeError("server", `Server ${serverId} is not in this API key's allowed servers`);
  }
}

/**
 * Reading, following or cancelling an existing operation takes the rights to
 * start one of its kind on its server: a key scoped to `restart` must not read
 * another key's exec output, nor a key scoped to one server another's.
 */
export function assertOperationInScope(key: AutomationKey, op: { type: string; serverId: string }): void {
  assertOperationAllowed(key, op.type as OperationType);
  assertServerAllowed(key, op.serverId);
}

/** The same scope as a query: the operations `assertOperationInScope` lets the key read. */
export function operationsInScope(key: AutomationKey): Prisma.OperationWhereInput[] {
  const where: Prisma.OperationWhereInput[] = [];
  if (key.allowedServerIds.length > 0) where.push({ serverId: { in: key.allowedServerIds } });
  if (key.allowedOperations.length > 0) where.push({ type: { in: key.allowedOperations } });
  return where;
}

export function assertCredentialAllowed(key: AutomationKey, credentialId: string): void {
  if (key.allowedCredentialIds.length > 0 && !key.allowedCredentialIds.includes(credentialId)) {
    throw new ScopeError("credential", `Registry credential ${credentialId} is not in this API key's allowed credentials`);
  }
}
