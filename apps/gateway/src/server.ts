import { createServer, type Server } from "node:http";
import { requestReceiveTimeouts } from "@runbridge/common";
import { createApp } from "./app";
import type { GatewayConfig } from "./config";
import type { GatewayContext } from "./context";

/** The gateway's HTTP server, not yet listening: main.ts and the tests' in-process gateway use the same one. */
export function createGatewayServer(ctx: GatewayContext, config: Pick<GatewayConfig, "HTTP_HEADERS_TIMEOUT_SECONDS" | "HTTP_REQUEST_TIMEOUT_SECONDS">): Server {
  const server = createServer(requestReceiveTimeouts(config.HTTP_HEADERS_TIMEOUT_SECONDS, config.HTTP_REQUEST_TIMEOUT_SECONDS), createApp(ctx));
  // Above the 60 s idle timeout of common load balancers: the balancer, not the gateway, closes an idle
  // connection, or a request it sends just as the gateway closes one would fail with a 502.
  server.keepAliveTimeout = 61_000;
  return server;
}
