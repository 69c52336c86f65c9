import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { DispatcherConfig } from "./config";

/**
 * The listener runners connect to. With DISPATCHER_TLS_CERT_FILE and
 * DISPATCHER_TLS_KEY_FILE it serves TLS itself (runners use https:// or wss://);
 * without them, plain HTTP, for a TLS-terminating proxy or load balancer in front.
 */
export function createDispatcherServer(config: DispatcherConfig, handler: RequestListener): Server {
  // The boot check (config.ts) has made sure both are set or neither, and both are readable.
  if (config.DISPATCHER_TLS_CERT_FILE) {
    // https.Server extends tls.Server, whose http handling matches http.Server's, which is all socket.io needs.
    return createHttpsServer({ cert: readFileSync(config.DISPATCHER_TLS_CERT_FILE), key: readFileSync(config.DISPATCHER_TLS_KEY_FILE), minVersion: "TLSv1.2" }, handler) as unknown as Server;
  }
  return createHttpServer(handler);
}
