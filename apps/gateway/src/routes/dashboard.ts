import { existsSync } from "node:fs";
import path from "node:path";
import express, { Router } from "express";
import Joi from "joi";
import { uuid } from "@runbridge/contracts";
import { managementAuth } from "../auth/locals";
import { managementAuthMiddleware } from "../auth/management-auth";
import { SESSION_TTL_SECONDS, SIGN_IN_HEADER, assertCsrf, createSession, destroySession, endSession, loadSession, verifyApiKey } from "../auth/session";
import type { GatewayContext } from "../context";
import { BadRequestError, NotFoundError, UnauthorizedError, ValidationError } from "../errors";
import { notFoundHandler } from "../middleware/error-handler";
import { dashboardSecurityHeaders } from "../middleware/security-headers";
import { validateBody, validateParam, validateQuery } from "../middleware/validate";
import { normaliseClientIp } from "../services/ip-allowlist";
import { parseLogEntry } from "../services/log-entry";
import { operationView } from "../services/serializers";

/** Where `vite build` puts the dashboard (same relative place from src/ under tests and dist/ in production). */
export const DASHBOARD_DIST = path.resolve(__dirname, "../../../dashboard/web/dist");

const LIVE_OUTPUT_BATCH = 500;
const MAX_STREAM_ID_PART = 2n ** 64n - 1n;

/** Operations one by-ids read may name: two "Load older" pages (50 each) of the Logs list. */
const OPERATIONS_BY_ID_MAX = 100;

const operationIdsSchema = Joi.object<{ ids: string[] }>({
  ids: Joi.array().items(uuid()).min(1).max(OPERATIONS_BY_ID_MAX).unique().required(),
});

const signInSchema = Joi.object<{ api_key: string }>({ api_key: Joi.string().trim().min(1).max(200).required() });

/**
 * The one body the dashboard's own routes read, parsed only there and small: the rest of /dashboard is
 * reads and static files, and parsing before any check would let anyone make the gateway parse 1 MB.
 */
const signInBody = express.json({ limit: "4kb", type: () => true, strict: false });

async function sessionView(ctx: GatewayContext, tenantId: string, apiKeyId: string, csrfToken: string) {
  const [tenant, key] = await Promise.all([
    ctx.prisma.tenant.findUnique({ where: { id: tenantId } }),
    ctx.prisma.apiKey.findUnique({ where: { id: apiKeyId } }),
  ]);
  return {
    tenant_id: tenantId,
    tenant_name: tenant?.name ?? null,
    api_key_id: apiKeyId,
    api_key_name: key?.name ?? null,
    api_key_prefix: key?.prefix ?? null,
    csrf_token: csrfToken,
    expires_in: SESSION_TTL_SECONDS,
  };
}

/**
 * /dashboard: the single-page app (static files with an SPA fallback), its
 * session endpoints (sign in with a general API key → HttpOnly cookie), and
 * the reads the management API lacks: operations by id (the live detail
 * view, the Logs list's refresh of its older rows) and live output.
 */
export function dashboardRouter(ctx: GatewayContext): Router {
  const router = Router();

  router.post("/dashboard/session", signInBody, async (req, res) => {
    if (!req.get(SIGN_IN_HEADER)) throw new BadRequestError('Sign-in requests must send the "X-Requested-With" header');
    const body = validateBody(signInSchema, req.body);
    const clientIp = normaliseClientIp(req.ip ?? "");
    const key = await verifyApiKey(ctx, body.api_key, clientIp);
    // Recorded first: a sign-in that cannot be audited does not happen (the error answers it).
    await ctx.prisma.auditEvent.create({ data: { tenantId: key.tenantId, type: "dashboard.signed_in", clientIp, data: { api_key_id: key.id } } });
    // A session id that came with the request is replaced, never reused (no session fixation).
    await endSession(ctx, req);
    const session = await createSession(ctx, req, res, key.tenantId, key.id);
    res.status(201).json(await sessionView(ctx, key.tenantId, key.id, session.csrfToken));
  });

  router.get("/dashboard/session", async (req, res) => {
    const session = await loadSession(ctx, req);
    if (!session) throw new UnauthorizedError("Not signed in");
    const key = await ctx.prisma.apiKey.findUnique({ where: { id: session.apiKeyId } });
    if (!key || key.revokedAt) {
      await destroySession(ctx, req, res);
      throw new UnauthorizedError("The API key of this dashboard session has been revoked");
    }
    res.set("Cache-Control", "no-store").json(await sessionView(ctx, session.tenantId, session.apiKeyId, session.csrfToken));
  });

  router.delete("/dashboard/session", async (req, res) => {
    const session = await loadSession(ctx, req);
    if (session) assertCsrf(req, session);
    await destroySession(ctx, req, res);
    if (session) {
      // Best effort: signing out is never refused, and the session is gone already.
      const data = { api_key_id: session.apiKeyId };
      await ctx.prisma.auditEvent
        .create({ data: { tenantId: session.tenantId, type: "dashboard.signed_out", clientIp: normaliseClientIp(req.ip ?? ""), data } })
        .catch((err: unknown) => ctx.logger.warn("audit of dashboard sign-out failed", { error: String(err) }));
    }
    res.status(204).end();
  });

  // Several operations by id: the Logs list refreshes the rows of its older pages that were still running.
  router.get("/dashboard/api/operations", managementAuthMiddleware(ctx), async (req, res) => {
    const auth = managementAuth(res);
    const raw = req.query.ids;
    const { ids } = validateQuery(operationIdsSchema, { ...req.query, ids: typeof raw === "string" ? raw.split(",") : raw });
    // Another tenant's ids, like unknown ones, are simply not in the answer.
    const rows = await ctx.prisma.operation.findMany({
      where: { id: { in: ids }, tenantId: auth.tenantId },
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      include: { server: { select: { name: true } } },
      // The list shows statuses only; the detail view reads the output.
      omit: { stdout: true, stderr: true },
    });
    res.set("Cache-Control", "no-store").json({ data: rows.map(operationView) });
  });

  // One operation by id, for the Logs detail view (polled while it runs).
  router.get("/dashboard/api/operations/:id", managementAuthMiddleware(ctx), async (req, res) => {
    const auth = managementAuth(res);
    const notFound = () => new NotFoundError(`Operation ${String(req.params.id)} not found`);
    const id = validateParam<string>(uuid(), req.params.id, notFound);
    const op = await ctx.operations.findForTenant(id, auth.tenantId);
    if (!op) throw notFound();
    res.set("Cache-Control", "no-store").json(operationView(op));
  });

  // Live output of a running operation, read from the dispatcher's bounded Redis stream after a given entry id.
  router.get("/dashboard/api/operations/:id/output", managementAuthMiddleware(ctx), async (req, res) => {
    const auth = managementAuth(res);
    const notFound = () => new NotFoundError(`Operation ${String(req.params.id)} not found`);
    const id = validateParam<string>(uuid(), req.params.id, notFound);
    const after = typeof req.query.after === "string" ? req.query.after : "";
    // Both parts are 64-bit numbers to Redis: a larger one was an error from Redis, answered 500.
    if (after && (!/^\d{1,20}-\d{1,20}$/.test(after) || after.split("-").some((part) => BigInt(part) > MAX_STREAM_ID_PART))) {
      throw new ValidationError('"after" must be a stream entry id such as 1700000000000-0');
    }
    const op = await ctx.prisma.operation.findFirst({ where: { id, tenantId: auth.tenantId }, select: { id: true } });
    if (!op) throw notFound();
    // Nothing can follow the largest id (and Redis refuses an exclusive start there).
    const rows = after === `${MAX_STREAM_ID_PART}-${MAX_STREAM_ID_PART}` ? [] : await ctx.redis.xrange(ctx.keys.operationLog(id), after ? `(${after}` : "-", "+", "COUNT", LIVE_OUTPUT_BATCH);
    // Output chunks, and (as the SSE stream's `cut_off` event) the one entry where the live log was cut off.
    // Each chunk with its byte offset in its stream: a reader that fell behind the stream's trimming sees the jump.
    const entries = rows.map(([entryId, fields]) => {
      const { stream, offset, data, cutOff } = parseLogEntry(fields);
      return cutOff ? { id: entryId, cut_off: { note: cutOff.note, cut_at: cutOff.cutAt } } : { id: entryId, stream, offset, data };
    });
    res.set("Cache-Control", "no-store").json({ entries, last_id: rows[rows.length - 1]?.[0] ?? (after || null) });
  });

  // Any other path under /dashboard/api or below /dashboard/session is an API path as well: a JSON 404 like the rest of the
  // API, not the app's index.html. (The session routes above still take /dashboard/session/, which has no sub-path.)
  router.all(["/dashboard/api{/*rest}", "/dashboard/session/*rest"], notFoundHandler);

  const index = path.join(DASHBOARD_DIST, "index.html");
  router.use("/dashboard", dashboardSecurityHeaders);
  // One canonical URL for the app's root (express' non-strict routing would also match "/dashboard/" here, hence the check).
  router.get("/dashboard", (req, res, next) => {
    if (req.originalUrl.split("?")[0] === "/dashboard") res.redirect(301, "/dashboard/");
    else next();
  });
  router.use(
    "/dashboard/assets",
    express.static(path.join(DASHBOARD_DIST, "assets"), { immutable: true, maxAge: "365d", fallthrough: false, index: false }),
  );
  router.use("/dashboard", express.static(DASHBOARD_DIST, { index: false, redirect: false }));
  // Client-side routes (/dashboard/logs?...) all load the app.
  router.get("/dashboard{/*rest}", (_req, res) => {
    if (!existsSync(index)) {
      res.status(503).json({ detail: "The dashboard is not built: run `pnpm build` (it runs `vite build` in apps/dashboard)" });
      return;
    }
    res.set("Cache-Control", "no-cache").sendFile(index);
  });
  return router;
}
