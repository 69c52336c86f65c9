import { OperationType } from "@runbridge/contracts";

/** Where the Automation API is mounted. */
export const AUTOMATION_BASE = "/api/automation/v1";

/** Its public description: the one path under the base that needs no key. */
export const OPENAPI_PATH = `${AUTOMATION_BASE}/openapi.json`;

/**
 * The routes that start an operation, by path under the base, with the
 * operation each starts: its key's operation scope is checked from this
 * before the body is read (auth/operation-scope.ts), so a key without the
 * right gets 403 whatever its body or Idempotency-Key looks like.
 */
export const OPERATION_ROUTES: Readonly<Record<string, OperationType>> = {
  "/exec": OperationType.Exec,
  "/deploy": OperationType.Deploy,
  "/restart": OperationType.Restart,
  "/reboot": OperationType.Reboot,
  "/registry-auth/login": OperationType.RegistryLogin,
  "/registry-auth/logout": OperationType.RegistryLogout,
};
