import type { RequestHandler } from "express";
import type { GatewayContext } from "../context";
import { normaliseClientIp } from "../services/ip-allowlist";
import { bearerToken } from "./bearer";
import type { ManagementAuth } from "./locals";
import { sessionAuth, touchApiKey, verifyApiKey } from "./session";

/** Authenticates a general API key (`rbk_...`) for the management API. */
export function managementAuthMiddleware(ctx: GatewayContext): RequestHandler {
  return async (req, res, next) => {
    // The dashboard authenticates by its session cookie instead (see session.ts).
    if (!req.get("authorization")) {
      const viaSession = await sessionAuth(ctx, req);
      if (viaSession) {
        res.locals.auth = viaSession;
        next();
        return;
      }
    }
    const token = bearerToken(req.get("authorization"), "rbk_...");
    const clientIp = normaliseClientIp(req.ip ?? "");
    const key = await verifyApiKey(ctx, token, clientIp, "Automation keys cannot call the management API; use a general API key (rbk_...)");
    touchApiKey(ctx, key);
    const auth: ManagementAuth = { kind: "management", tenantId: key.tenantId, apiKeyId: key.id, clientIp, via: "api" };
    res.locals.auth = auth;
    next();
  };
}
