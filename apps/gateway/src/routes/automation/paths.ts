import { OperationType } from "@runbridge/contracts";

/** Where the Automation API is mounted. */
export const AUTOMATION_BASE = "/api/automation/v1";

/** Its public description: the one path under the base that needs no key. */
export const OPENAPI_PATH = `${AUTOMATION_BASE}/openapi.json`;

/** The route that starts each operation, under the base: the routers register these paths. */
export const OPERATION_PATHS: Readonly<Record<OperationType, string>> = {
  [OperationType.Exec]: "/exec",
  [OperationType.Deploy]: "/deploy",
  [OperationType.Restart]: "/restart",
  [OperationType.Reboot]: "/reboot",
  [OperationType.RegistryLogin]: "/registry-auth/login",
  [OperationType.RegistryLogout]: "/registry-auth/logout",
};

/**
 * The same, by path: the key's operation scope is checked from this before
 * the body is read (auth/operation-scope.ts), so a key without the right gets
 * 403 whatever its body or Idempotency-Key looks like.
 */
export const OPERATION_ROUTES: Readonly<Record<string, OperationType>> = Object.fromEntries(
  Object.entries(OPERATION_PATHS).map(([type, path]) => [path, type as OperationType]),
);
