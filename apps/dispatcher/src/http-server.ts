import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { requestReceiveTimeouts } from "@runbridge/common";
import type { DispatcherConfig } from "./config";

/**
 * Runners' upgrade requests and Prometheus' scrapes are a few hundred bytes: Node's defaults (60 s for
 * the headers, 300 s for a request, checked every 30 s) would let a client that trickles them hold a
 * connection for minutes before its token is even read (RUNNER_HANDSHAKE_TIMEOUT_MS starts at the upgrade).
 */
const TIMEOUTS = requestReceiveTimeouts(10, 30);
/** Node's default is 120 s; a runner's TLS handshake is a few round trips. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The listener runners connect to. With DISPATCHER_TLS_CERT_FILE and
 * DISPATCHER_TLS_KEY_FILE it serves TLS itself (runners use https:// or wss://);
 * without them, plain HTTP, for a TLS-terminating proxy or load balancer in front.
 */
export function createDispatcherServer(config: DispatcherConfig, handler: RequestListener): Server {
  // The boot check (config.ts) has made sure both are set or neither, and both are readable.
  if (config.DISPATCHER_TLS_CERT_FILE) {
    // https.Server extends tls.Server, whose http handling matches http.Server's, which is all socket.io needs.
    return createHttpsServer({ ...TIMEOUTS, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS, cert: readFileSync(config.DISPATCHER_TLS_CERT_FILE), key: readFileSync(config.DISPATCHER_TLS_KEY_FILE), minVersion: "TLSv1.2" }, handler) as unknown as Server;
  }
  return createHttpServer(TIMEOUTS, handler);
}
