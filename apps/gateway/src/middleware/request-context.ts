import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestHandler } from "express";
import { type Logger, withLogContext } from "@runbridge/common";
import { observeHttpAnswer } from "../metrics";

const requestIds = new WeakMap<IncomingMessage, string>();

/**
 * Every request's bookkeeping, done once before routing (by the front door):
 * its id (honours a sane incoming X-Request-Id), echoed back; and, when the
 * answer has been sent, the access log line and the HTTP metrics, whoever
 * answered — the front door or Express. `path` is read by the caller before
 * Express rewrites req.url while routing through mounted routers.
 */
export function beginRequest(req: IncomingMessage, res: ServerResponse, logger: Logger, path: string, clientIp: () => string): string {
  const incoming = req.headers["x-request-id"];
  const requestId = typeof incoming === "string" && /^[\w.-]{1,100}$/.test(incoming) ? incoming : randomUUID();
  requestIds.set(req, requestId);
  res.setHeader("X-Request-Id", requestId);
  const started = process.hrtime.bigint();
  res.on("finish", () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    observeHttpAnswer(req, path, res.statusCode, seconds);
    // Checked first: resolving the client address for a line nobody logs is a waste on every request.
    if (logger.isLevelEnabled("http")) logger.http("request", { requestId, method: req.method, path, status: res.statusCode, ms: seconds * 1000, ip: clientIp() });
  });
  return requestId;
}

/** Carries the request's id in the log context, so every line logged while Express handles it has it. */
export function requestContext(): RequestHandler {
  return (req, _res, next) => {
    withLogContext({ requestId: requestIds.get(req) ?? randomUUID() }, next);
  };
}
