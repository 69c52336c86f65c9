import { Router } from "express";
import type { GatewayContext } from "../context";

/** Liveness (process up) and readiness (PostgreSQL and Redis answer, and not shutting down). */
export function healthRouter(ctx: GatewayContext): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    if (ctx.draining.aborted) {
      res.status(503).json({ status: "unavailable", checks: {}, detail: "shutting down" });
      return;
    }
    const checks: Record<string, string> = {};
    await Promise.all([
      ctx.prisma.$queryRaw`SELECT 1`.then(
        () => (checks.postgres = "ok"),
        (e: unknown) => (checks.postgres = `error: ${String(e).slice(0, 200)}`),
      ),
      ctx.redis.ping().then(
        () => (checks.redis = "ok"),
        (e: unknown) => (checks.redis = `error: ${String(e).slice(0, 200)}`),
      ),
    ]);
    const ok = Object.values(checks).every((v) => v === "ok");
    res.status(ok ? 200 : 503).json({ status: ok ? "ok" : "unavailable", checks, ...(ok ? {} : { detail: "not ready" }) });
  });
  return router;
}
