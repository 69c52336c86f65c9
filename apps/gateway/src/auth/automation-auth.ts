import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestHandler } from "express";
import { TokenKind, hashToken, hashesEqual, isWellFormedToken } from "@runbridge/common";
import type { AutomationKey } from "@runbridge/db";
import type { GatewayContext } from "../context";
import { ForbiddenError, type HttpError, RateLimitedError, UnauthorizedError } from "../errors";
import { normaliseClientIp } from "../services/ip-allowlist";
import { RATE_WINDOW_SECONDS, setRateLimitHeaders } from "../services/rate-limit";
import type { RefusalReason } from "../services/refusal-audit";
import { bearerToken } from "./bearer";
import type { AutomationAuth } from "./locals";

/** What authenticating an Automation API request reads from it. */
export interface AuthenticationInput {
  authorization: string | undefined;
  /** As the proxy settings resolve it (Express's req.ip). */
  clientIp: string;
  method: string;
  /** The request's path, for the rate-limit audit event. */
  path: string;
}

/**
 * Authenticates `Authorization: Bearer rca_...` for the Automation API and
 * applies the key-wide rules, in this order (the spec's error table, most
 * fundamental first):
 *   401 invalid / revoked / expired key
 *   403 client IP not in the key's allowlist
 *   429 the key's rate limit is used up
 * Operation and server scopes (403), validation (422), 404 and 409 are the
 * routes' business, after this. Sets the rate-limit headers on `res`.
 */
export async function authenticateAutomation(ctx: GatewayContext, input: AuthenticationInput, res: ServerResponse): Promise<AutomationAuth> {
  const token = bearerToken(input.authorization, "rca_...");
  // Checksum first: a mistyped key never costs a lookup (an invented one can: see UnknownKeyGuard).
  if (!isWellFormedToken(token, TokenKind.AutomationKey)) {
    throw new UnauthorizedError(token.startsWith("rbk_") ? "Invalid API key: general API keys (rbk_...) cannot call the Automation API; use an automation key (rca_...)" : "Invalid API key");
  }
  const hash = hashToken(token);
  const clientIp = normaliseClientIp(input.clientIp);
  const { cache, unknownKeys } = ctx.keyServices;
  // Warm keys come from the in-process cache (no PostgreSQL round trip); lookups of tokens that
  // turn out to name no key are bounded per client address.
  // Set when the lookup goes to the database: whether it took a point of the address's budget.
  let charged: boolean | undefined;
  let cached: Awaited<ReturnType<typeof cache.get>>;
  try {
    cached = await cache.get(hash, async () => {
      charged = await unknownKeys.admit(clientIp, hash);
    });
  } catch (err) {
    if (charged !== undefined) await unknownKeys.failed(clientIp, charged);
    throw err;
  }
  if (charged !== undefined && cached) await unknownKeys.found(clientIp, hash, charged);
  if (!cached || !hashesEqual(cached.key.keyHash, hash)) throw new UnauthorizedError("Invalid API key");
  const { key } = cached;
  const refuse = async (reason: RefusalReason, error: HttpError): Promise<never> => {
    await ctx.keyServices.refusals.refused(key, clientIp, reason, error, input);
    throw error;
  };
  if (key.revokedAt) await refuse("revoked", new UnauthorizedError("API key has been revoked"));
  if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) await refuse("expired", new UnauthorizedError(`API key expired at ${key.expiresAt.toISOString()}`));

  if (!cached.ipAllowed(clientIp)) await refuse("ip_not_allowed", new ForbiddenError(`Client IP ${clientIp} is not in this API key's IP allowlist`));

  await enforceRateLimit(ctx, input, res, key, clientIp);

  ctx.keyServices.usage.record(key.id, clientIp);
  return { kind: "automation", tenantId: key.tenantId, key, clientIp };
}

type Outcome = { auth: AutomationAuth } | { error: unknown };

/** Requests the front door (front-door.ts) authenticated before Express saw them. */
const authenticatedAhead = new WeakMap<IncomingMessage, Outcome>();

/**
 * Hands the front door's outcome to the Express middleware, which must not
 * authenticate again: that would take a second point off the rate limit.
 */
export function rememberAuthentication(req: IncomingMessage, outcome: Outcome): void {
  authenticatedAhead.set(req, outcome);
}

/**
 * The Automation API's authentication inside Express: the front door's
 * outcome when it authenticated this request (an error it did not answer
 * itself, e.g. PostgreSQL unreachable, goes to the error middleware), else
 * authenticates now.
 */
export function automationAuthMiddleware(ctx: GatewayContext): RequestHandler {
  return async (req, res, next) => {
    const ahead = authenticatedAhead.get(req);
    if (ahead && "error" in ahead) throw ahead.error;
    res.locals.auth =
      ahead?.auth ??
      (await authenticateAutomation(
        ctx,
        { authorization: req.get("authorization"), clientIp: req.ip ?? "", method: req.method, path: req.originalUrl.split("?")[0] ?? "" },
        res,
      ));
    next();
  };
}

async function enforceRateLimit(ctx: GatewayContext, input: AuthenticationInput, res: ServerResponse, key: AutomationKey, clientIp: string): Promise<void> {
  const decision = await ctx.keyServices.limiter.consume(key.id, key.rateLimit);
  setRateLimitHeaders(res, decision);
  if (decision.allowed) return;
  // One event per key and window, written by whichever replica refuses first.
  const data = { limit: key.rateLimit, window_seconds: RATE_WINDOW_SECONDS, method: input.method, path: input.path };
  await ctx.keyServices.refusals.rateLimited(key, clientIp, decision.resetMs, data);
  throw new RateLimitedError(
    `Rate limit of ${key.rateLimit} requests per minute exceeded for this API key; retry after the Retry-After header's seconds`,
    decision.resetMs / 1000,
  );
}
