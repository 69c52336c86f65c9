import type { RequestListener } from "node:http";
import express, { type Express } from "express";
import { trustProxySetting } from "@runbridge/common";
import { automationAuthMiddleware } from "./auth/automation-auth";
import { managementAuthMiddleware } from "./auth/management-auth";
import { operationScopeMiddleware } from "./auth/operation-scope";
import { frontDoor } from "./front-door";
import { expectedRouteNoter, noteFailedRoute } from "./metrics";
import type { GatewayContext } from "./context";
import { errorHandler, notFoundHandler } from "./middleware/error-handler";
import { requestContext } from "./middleware/request-context";
import { apiSecurityHeaders } from "./middleware/security-headers";
import { execRouter } from "./routes/automation/exec";
import { operationsRouter } from "./routes/automation/operations";
import { cancelRouter } from "./routes/automation/cancel";
import { listOperationsRouter } from "./routes/automation/list";
import { logsRouter } from "./routes/automation/logs";
import { openApiRouter } from "./routes/automation/openapi";
import { AUTOMATION_BASE } from "./routes/automation/paths";
import { idempotencyMiddleware } from "./middleware/idempotency";
import { deployRouter } from "./routes/automation/deploy";
import { rebootRouter } from "./routes/automation/reboot";
import { registryAuthRouter } from "./routes/automation/registry-auth";
import { restartRouter } from "./routes/automation/restart";
import { applicationsRouter } from "./routes/management/applications";
import { registryCredentialsRouter } from "./routes/management/registry-credentials";
import { auditEventsRouter } from "./routes/management/audit-events";
import { apiKeysRouter } from "./routes/management/api-keys";
import { automationKeysRouter } from "./routes/management/automation-keys";
import { managementOperationsRouter } from "./routes/management/operations";
import { serversRouter } from "./routes/management/servers";
import { healthRouter } from "./routes/health";
import { metricsRouter } from "./routes/metrics";
import { dashboardRouter } from "./routes/dashboard";
import { auditScopeRefusals } from "./services/refusal-audit";

/**
 * Bodies are bounded above the largest valid request as JSON can spell it: the
 * limits count decoded text, and JSON may write each character as a \u escape
 * (control characters must be): 6 bytes per byte of a 64 KiB env (384 KiB), 12
 * per character outside the BMP (a surrogate pair) of an 8,192-character command
 * (96 KiB) and of a working directory and run context (24 KiB each) — about
 * 530 KiB in all.
 */
const BODY_LIMIT = "1mb";

/** The gateway's request handler: the front door, then Express. */
export function createApp(ctx: GatewayContext): RequestListener {
  return frontDoor(ctx, createExpressApp(ctx));
}

function createExpressApp(ctx: GatewayContext): Express {
  const app = express();
  app.disable("x-powered-by");
  // Answers are per-request JSON: an ETag (a hash of every body) buys nothing here.
  app.set("etag", false);
  app.set("trust proxy", trustProxySetting(ctx.config.TRUST_PROXY));
  app.set("query parser", "simple");
  // Request ids, access log, metrics and the drain's Connection: close are the front door's.
  app.use(requestContext());
  app.use(apiSecurityHeaders);
  // CI clients often forget Content-Type (curl -d sends form encoding): every body is read as JSON.
  // Parsed after authentication, so a rejected request (401, 403, 429) costs no parsing.
  const json = express.json({ limit: BODY_LIMIT, type: () => true, strict: false });

  app.use(healthRouter(ctx));
  app.use(metricsRouter());

  // Public: the API description needs no key (the front door knows this path too).
  app.use(openApiRouter());

  const automation = express.Router();
  automation.use(automationAuthMiddleware(ctx));
  automation.use(operationScopeMiddleware());
  automation.use(json);
  automation.use(idempotencyMiddleware(ctx));
  automation.use(execRouter(ctx));
  automation.use(operationsRouter(ctx));
  automation.use(listOperationsRouter(ctx));
  automation.use(cancelRouter(ctx));
  automation.use(logsRouter(ctx));
  automation.use(deployRouter(ctx));
  automation.use(restartRouter(ctx));
  automation.use(rebootRouter(ctx));
  automation.use(registryAuthRouter(ctx));
  automation.use(auditScopeRefusals(ctx.keyServices.refusals));
  automation.use(noteFailedRoute());
  app.use(AUTOMATION_BASE, automation);

  const management = express.Router();
  const expectedRoute = expectedRouteNoter("/api/v1");
  management.use(expectedRoute.middleware);
  management.use(managementAuthMiddleware(ctx));
  management.use(json);
  management.use(serversRouter(ctx));
  management.use(automationKeysRouter(ctx));
  management.use(apiKeysRouter(ctx));
  management.use(managementOperationsRouter(ctx));
  management.use(applicationsRouter(ctx));
  management.use(registryCredentialsRouter(ctx));
  management.use(auditEventsRouter(ctx));
  management.use(noteFailedRoute());
  expectedRoute.learn(management);
  app.use("/api/v1", management);

  app.use(dashboardRouter(ctx));

  app.use(notFoundHandler);
  app.use(errorHandler(ctx.logger));
  return app;
}
