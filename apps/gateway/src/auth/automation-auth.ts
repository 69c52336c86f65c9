import type { RequestHandler } from "express";
import { TokenKind, hashToken, hashesEqual, isWellFormedToken } from "@runbridge/common";
import type { GatewayContext } from "../context";
import { UnauthorizedError } from "../errors";
import { bearerToken } from "./bearer";
import type { AutomationAuth } from "./locals";

/** Authenticates `Authorization: Bearer rca_...` for the Automation API. */
export function automationAuthMiddleware(ctx: GatewayContext): RequestHandler {
  return async (req, res, next) => {
    const token = bearerToken(req, "rca_...");
    // Checksum first: a mistyped or invented key never costs a lookup.
    if (!isWellFormedToken(token, TokenKind.AutomationKey)) throw new UnauthorizedError("Invalid API key");
    const hash = hashToken(token);
    const key = await ctx.prisma.automationKey.findUnique({ where: { keyHash: hash } });
    if (!key || !hashesEqual(key.keyHash, hash)) throw new UnauthorizedError("Invalid API key");
    if (key.revokedAt) throw new UnauthorizedError("API key has been revoked");
    if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) throw new UnauthorizedError(`API key expired at ${key.expiresAt.toISOString()}`);
    const auth: AutomationAuth = { kind: "automation", tenantId: key.tenantId, key, clientIp: req.ip ?? "" };
    res.locals.auth = auth;
    next();
  };
}
