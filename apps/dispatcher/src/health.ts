import type { IncomingMessage, ServerResponse } from "node:http";
import type { Redis } from "ioredis";
import { checkReadiness, pingRedis, type Logger } from "@runbridge/common";
import type { PrismaClient } from "@runbridge/db";
import { dispatcherRegistry } from "./metrics";

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
}

/**
 * The dispatcher's plain HTTP routes, beside the runners' socket.io path:
 * liveness, readiness and the Prometheus scrape. Readiness is 503 from the
 * first step of shutdown on, and otherwise pings PostgreSQL and Redis; `probeRedis` must be a fail-fast connection (no offline queue), or a
 * ping would wait for Redis to come back instead of reporting it down.
 */
export function createHealthHandler(deps: { prisma: PrismaClient; probeRedis: Redis; logger: Logger; draining: AbortSignal }): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(res, 405, { detail: `Method ${req.method ?? ""} not allowed` });
      return;
    }
    if (path === "/healthz") {
      sendJson(res, 200, { status: "ok" });
      return;
    }
    if (path === "/readyz") {
      // Shutting down: load balancers stop sending runners here before the sockets are closed.
      if (deps.draining.aborted) return sendJson(res, 503, { status: "draining" });
      void checkReadiness({ postgres: () => deps.prisma.$queryRaw`SELECT 1`, redis: () => pingRedis(deps.probeRedis) }, deps.logger).then(({ ok, body }) =>
        sendJson(res, ok ? 200 : 503, body),
      );
      return;
    }
    if (path === "/metrics") {
      dispatcherRegistry.metrics().then(
        (text) => res.writeHead(200, { "content-type": dispatcherRegistry.contentType }).end(text),
        (err: unknown) => sendJson(res, 500, { detail: `metrics collection failed: ${String(err)}` }),
      );
      return;
    }
    sendJson(res, 404, { detail: `No route for ${req.method} ${path ?? ""}` });
  };
}
