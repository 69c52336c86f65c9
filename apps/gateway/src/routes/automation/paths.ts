import { OperationType } from "@runbridge/contracts";
import { routeMatcher } from "../../route-matcher";

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

/** The routes about an operation once started, under the base: the routers register these paths. */
export const STARTED_OPERATION_PATHS = {
  list: "/operations",
  one: "/operations/:operationId",
  cancel: "/operations/:operationId/cancel",
  logs: "/operations/:operationId/logs",
} as const;

/** Every route of the Automation API, by method and path under the base, as the routers register them. */
export const AUTOMATION_ROUTES: readonly (readonly ["GET" | "POST", string])[] = [
  ...Object.values(OPERATION_PATHS).map((path) => ["POST", path] as const),
  ["GET", STARTED_OPERATION_PATHS.list],
  ["GET", STARTED_OPERATION_PATHS.one],
  ["POST", STARTED_OPERATION_PATHS.cancel],
  ["GET", STARTED_OPERATION_PATHS.logs],
];

/**
 * The template of the Automation API route a request is for (e.g.
 * /api/automation/v1/operations/:operationId), found from its method and path
 * alone, as Express would route it (HEAD by GET routes, an absolute-form
 * target by its path); undefined when no route serves it. For the metrics of
 * requests answered before Express routed them: the front door's refusals
 * (401, 403, 429), and the key-wide checks, body parsing and idempotency
 * replays that come before the routes inside Express.
 */
export const automationRouteTemplate = routeMatcher(AUTOMATION_ROUTES.map(([method, path]) => [method, `${AUTOMATION_BASE}${path}`] as const));
