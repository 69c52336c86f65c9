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
    // Unauthenticated: the answer says which store is down; why (host names, ports) goes to the log only.
    const check = (name: string, probe: Promise<unknown>) =>
      probe.then(
        () => (checks[name] = "ok"),
        (e: unknown) => {
          ctx.logger.warn("readiness check failed", { check: name, error: String(e) });
          checks[name] = "error";
        },
      );
    await Promise.all([check("postgres", ctx.prisma.$queryRaw`SELECT 1`), check("redis", ctx.redis.ping())]);
    const ok = Object.values(checks).every((v) => v === "ok");
    res.status(ok ? 200 : 503).json({ status: ok ? "ok" : "unavailable", checks, ...(ok ? {} : { detail: "not ready" }) });
  });
  return router;
}
