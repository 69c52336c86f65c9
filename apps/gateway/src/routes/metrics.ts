import { Router } from "express";
import { gatewayRegistry } from "../metrics";

/**
 * Prometheus scrape endpoint. It carries no secret and no tenant data (only
 * counts by route and operation type), but it is meant for the internal
 * network: docs/operations.md says to keep it off the public listener.
 */
export function metricsRouter(): Router {
  // Exactly /metrics: the proxy in front blocks that path, and Express would also answer /METRICS or /metrics/.
  const router = Router({ caseSensitive: true, strict: true });
  router.get("/metrics", async (_req, res) => {
    res.set("Content-Type", gatewayRegistry.contentType).send(await gatewayRegistry.metrics());
  });
  return router;
}
