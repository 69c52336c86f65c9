import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import { type Logger, withLogContext } from "@runbridge/common";

/**
 * Request id (honours a sane incoming X-Request-Id), echoed back, and carried
 * in the log context so every line logged while handling the request has it.
 */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.get("x-request-id");
    const requestId = incoming && /^[\w.-]{1,100}$/.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.set("X-Request-Id", requestId);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      logger.http("request", {
        requestId,
        method: req.method,
        // req.path is relative to the last router by the time the response is sent.
        path: req.originalUrl.split("?")[0],
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        ip: req.ip,
      });
    });
    withLogContext({ requestId }, next);
  };
}
