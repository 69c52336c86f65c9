import type { RequestHandler } from "express";
import { TokenKind, hashToken, isWellFormedToken } from "@runbridge/common";
import type { GatewayContext } from "../context";
import { UnauthorizedError } from "../errors";
import { bearerToken } from "./bearer";
import type { ManagementAuth } from "./locals";
import { sessionAuth } from "./session";

const LAST_USED_RESOLUTION_MS = 60_000;

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
    const token = bearerToken(req, "rbk_...");
    if (!isWellFormedToken(token, TokenKind.ApiKey)) {
      throw new UnauthorizedError(
        token.startsWith("rca_") ? "Automation keys cannot call the management API; use a general API key (rbk_...)" : "Invalid API key",
      );
    }
    const key = await ctx.prisma.apiKey.findUnique({ where: { keyHash: hashToken(token) } });
    if (!key) throw new UnauthorizedError("Invalid API key");
    if (key.revokedAt) throw new UnauthorizedError("API key has been revoked");
    if (!key.lastUsedAt || Date.now() - key.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      // Best effort, off the request path.
      ctx.prisma.apiKey.update({ where: { id: key.id }, data: { lastUsedAt: new Date() } }).catch(() => undefined);
    }
    const auth: ManagementAuth = { kind: "management", tenantId: key.tenantId, apiKeyId: key.id, clientIp: req.ip ?? "" };
    res.locals.auth = auth;
    next();
  };
}
