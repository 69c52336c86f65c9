import { Router } from "express";
import { checkReadiness, pingRedis } from "@runbridge/common";
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
    const { ok, body } = await checkReadiness({ postgres: () => ctx.prisma.$queryRaw`SELECT 1`, redis: () => pingRedis(ctx.redis) }, ctx.logger);
    res.status(ok ? 200 : 503).json(body);
  });
  return router;
}
