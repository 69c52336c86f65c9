import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Request, Response } from "express";
import { TokenKind, hashToken, isWellFormedToken } from "@runbridge/common";
import type { GatewayContext } from "../context";
import { ForbiddenError, UnauthorizedError } from "../errors";
import { normaliseClientIp } from "../services/ip-allowlist";
import type { ManagementAuth } from "./locals";

/**
 * Dashboard sessions: the browser trades a general API key (rbk_...) for an
 * opaque session id in an HttpOnly cookie, so the key never lives in
 * JavaScript or local storage. The session lives in Redis under the SHA-256
 * of its id (a Redis dump does not hold usable session ids).
 *
 * CSRF: the cookie is SameSite=Strict, and every state-changing request that
 * authenticates with the cookie must also echo the session's CSRF token in
 * the X-CSRF-Token header, which a cross-site page cannot read.
 */
export const SESSION_COOKIE = "rb_session";
/**
 * Over TLS the cookie carries the `__Host-` prefix: browsers take it only Secure, for Path=/ and from this
 * host itself, so a sibling subdomain cannot plant one (a session of its own, or a broken value that signs
 * the user out) for this host, as it can a plain cookie. Over plain HTTP (local use) the plain name.
 */
export const SECURE_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;
const sessionCookie = (req: Request) => (req.secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE);
export const CSRF_HEADER = "x-csrf-token";
/** Sign-in must come from script (a cross-site form cannot set custom headers): guards against login CSRF. */
export const SIGN_IN_HEADER = "x-requested-with";
export const SESSION_TTL_SECONDS = 8 * 60 * 60;

export interface DashboardSession {
  tenantId: string;
  apiKeyId: string;
  csrfToken: string;
  createdAt: string;
}

const LAST_USED_RESOLUTION_MS = 60_000;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function sessionKey(ctx: GatewayContext, sessionId: string): string {
  return `${ctx.config.REDIS_PREFIX}:dashboard-session:${createHash("sha256").update(sessionId).digest("hex")}`;
}

/** The value of one cookie from the Cookie header (no dependency needed for one name). */
export function readCookie(req: Request, name: string): string | null {
  const header = req.get("cookie");
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{20,100}$/.test(value) ? value : null;
    }
  }
  return null;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks a general API key (Bearer path and dashboard sign-in); returns its row
 * or throws 401. `automationKeyRefusal` says why an automation key (rca_) was refused here.
 */
export async function verifyApiKey(
  ctx: GatewayContext,
  token: string,
  clientIp: string,
  automationKeyRefusal = "Automation keys cannot sign in to the dashboard; use a general API key (rbk_...)",
) {
  if (!isWellFormedToken(token, TokenKind.ApiKey)) {
    throw new UnauthorizedError(token.startsWith("rca_") ? automationKeyRefusal : "Invalid API key");
  }
  const keyHash = hashToken(token);
  // Invented tokens cost a lookup each: bounded per address, as for automation keys.
  const guard = ctx.keyServices.unknownKeys;
  const charged = await guard.admit(clientIp, keyHash);
  const key = await ctx.prisma.apiKey.findUnique({ where: { keyHash } }).catch(async (err: unknown) => {
    await guard.failed(clientIp, charged);
    throw err;
  });
  if (!key) throw new UnauthorizedError("Invalid API key");
  await guard.found(clientIp, keyHash, charged);
  if (key.revokedAt) throw new UnauthorizedError("API key has been revoked");
  return key;
}

/** Records a general API key's use, at most once a minute per key; best effort, off the request path. */
export function touchApiKey(ctx: GatewayContext, key: { id: string; lastUsedAt: Date | null }): void {
  if (key.lastUsedAt && Date.now() - key.lastUsedAt.getTime() <= LAST_USED_RESOLUTION_MS) return;
  ctx.prisma.apiKey.update({ where: { id: key.id }, data: { lastUsedAt: new Date() } }).catch(() => undefined);
}

export async function createSession(ctx: GatewayContext, req: Request, res: Response, tenantId: string, apiKeyId: string): Promise<DashboardSession> {
  const id = randomBytes(32).toString("base64url");
  const session: DashboardSession = { tenantId, apiKeyId, csrfToken: randomBytes(32).toString("base64url"), createdAt: new Date().toISOString() };
  await ctx.redis.set(sessionKey(ctx, id), JSON.stringify(session), "EX", SESSION_TTL_SECONDS);
  res.cookie(sessionCookie(req), id, {
    httpOnly: true,
    sameSite: "strict",
    // Behind TLS (directly or via a trusted proxy) the cookie never travels in clear.
    secure: req.secure,
    path: "/",
    maxAge: SESSION_TTL_SECONDS * 1000,
  });
  return session;
}

export async function loadSession(ctx: GatewayContext, req: Request): Promise<DashboardSession | null> {
  const id = readCookie(req, sessionCookie(req));
  if (!id) return null;
  const raw = await ctx.redis.get(sessionKey(ctx, id));
  if (!raw) return null;
  return JSON.parse(raw) as DashboardSession;
}

/** Forgets the request's session server-side (the cookie, if any, becomes worthless). */
export async function endSession(ctx: GatewayContext, req: Request): Promise<void> {
  const id = readCookie(req, sessionCookie(req));
  if (id) await ctx.redis.del(sessionKey(ctx, id));
}

export async function destroySession(ctx: GatewayContext, req: Request, res: Response): Promise<void> {
  await endSession(ctx, req);
  res.clearCookie(sessionCookie(req), { httpOnly: true, sameSite: "strict", secure: req.secure, path: "/" });
}

/** Rejects a state-changing cookie-authenticated request without the session's CSRF token. */
export function assertCsrf(req: Request, session: DashboardSession): void {
  if (SAFE_METHODS.has(req.method)) return;
  const sent = req.get(CSRF_HEADER);
  if (!sent || !sameSecret(sent, session.csrfToken)) {
    throw new ForbiddenError("Missing or invalid X-CSRF-Token header: cookie-authenticated changes must send the session's CSRF token");
  }
}

/**
 * Management-API authentication by dashboard session, used when a request has
 * no Authorization header. Returns null when there is no session cookie, so
 * the caller falls back to asking for a Bearer key. The API key behind the
 * session is re-checked on every request: revoking it ends its sessions.
 */
export async function sessionAuth(ctx: GatewayContext, req: Request): Promise<ManagementAuth | null> {
  if (!readCookie(req, sessionCookie(req))) return null;
  const session = await loadSession(ctx, req);
  if (!session) throw new UnauthorizedError("Dashboard session expired or signed out; sign in again");
  const key = await ctx.prisma.apiKey.findUnique({ where: { id: session.apiKeyId } });
  if (!key || key.revokedAt || key.tenantId !== session.tenantId) throw new UnauthorizedError("The API key of this dashboard session has been revoked");
  assertCsrf(req, session);
  touchApiKey(ctx, key);
  return { kind: "management", tenantId: session.tenantId, apiKeyId: session.apiKeyId, clientIp: normaliseClientIp(req.ip ?? ""), via: "dashboard" };
}
