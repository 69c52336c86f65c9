import type { ServerOptions } from "node:http";

/**
 * How often Node's HTTP server looks for requests past their headers or
 * request timeout. Its default, 30 s, lets a client that sends a request a
 * byte at a time hold the connection up to 30 s past either timeout; a check
 * each second costs a walk of the server's connections list in C++.
 */
const CHECK_INTERVAL_MS = 1_000;

/**
 * Bounds on receiving a request, from the connection's opening (for its first request) or the
 * request's first byte (for the next ones on a kept-alive connection): its headers, and the
 * whole of it. Node applies neither to the time an answer takes once the
 * request is in (a held exec), nor to an idle keep-alive connection between
 * requests, so both can be far below how long requests are held.
 */
export function requestReceiveTimeouts(headersSeconds: number, requestSeconds: number): Pick<ServerOptions, "headersTimeout" | "requestTimeout" | "connectionsCheckingInterval"> {
  return { headersTimeout: headersSeconds * 1000, requestTimeout: requestSeconds * 1000, connectionsCheckingInterval: CHECK_INTERVAL_MS };
}
