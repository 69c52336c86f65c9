import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { ErrorRequestHandler, RequestHandler } from "express";
import { isInfrastructureDown, type Logger } from "@runbridge/common";
import { Limits } from "@runbridge/contracts";
import { Prisma } from "@runbridge/db";
import { HttpError, OutcomeUnknownError } from "../errors";

/**
 * A domain error's answer outside Express (the front door's refusals): what
 * the error middleware sends for it, in one write.
 */
export function writeHttpError(res: ServerResponse, err: HttpError): void {
  const body = JSON.stringify({ detail: err.message });
  res.statusCode = err.status;
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  // The two of the API's security headers (middleware/security-headers.ts) that matter for a short error body.
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

/** Maps every error to `{ "detail": ... }`. Unknown errors: 500 with an error id that is logged. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err instanceof HttpError) {
      // Through res.json, not writeHttpError: the idempotency middleware releases its key when it sees the error answer
      // there — or keeps it with this answer, for one whose operation may run (OutcomeUnknownError).
      if (err instanceof OutcomeUnknownError) res.locals.keepsIdempotencyKey = true;
      res.set(err.headers).status(err.status).json({ detail: err.message });
      return;
    }
    // body-parser errors carry a status and a type.
    const e = err as { type?: string; status?: number; expose?: boolean; message?: string };
    if (e.type === "entity.parse.failed") {
      res.status(400).json({ detail: "Malformed JSON in request body" });
      return;
    }
    // The spec answers an oversized input (an env too large) with 422, whatever the size.
    if (e.type === "entity.too.large") {
      // Only the Automation API's bodies carry env; the dashboard's sign-in takes a few hundred bytes.
      const why = req.path.startsWith("/dashboard/") ? "a sign-in takes an API key only" : `env values are limited to ${Limits.envMaxBytes / 1024} KiB in all`;
      res.status(422).json({ detail: `Request body is too large (${why})` });
      return;
    }
    // The router rejects a path whose percent-encoding is broken before any route sees it.
    if (err instanceof URIError) {
      res.status(400).json({ detail: "Malformed percent-encoding in the request path" });
      return;
    }
    if (typeof e.status === "number" && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ detail: e.expose && e.message ? e.message : "Bad request" });
      return;
    }
    // Prisma's "record to update or delete does not exist": another request deleted it between this
    // request's lookup and its write (two deletes of one application at once, say).
    // A foreign key that no longer holds: the row it names (an application's server) was deleted by another
    // request between this request's check and its write.
    if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2003") {
      res.status(422).json({ detail: `A resource this request refers to was deleted by another request while it was handled (${req.method} ${req.path})` });
      return;
    }
    if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2025") {
      res.status(404).json({ detail: `Not found: it was deleted by another request while this one was handled (${req.method} ${req.path})` });
      return;
    }
    if (isInfrastructureDown(err)) {
      logger.warn("dependency unavailable", { path: req.path, error: String(err) });
      res.set("Retry-After", "5").status(503).json({ detail: "Service temporarily unavailable: a backing store (PostgreSQL or Redis) is not reachable or did not answer in time; retry shortly" });
      return;
    }
    const errorId = randomUUID();
    logger.error("unhandled error", { errorId, path: req.path, method: req.method, error: err instanceof Error ? err.stack : String(err) });
    res.status(500).json({ detail: `Internal server error (error id ${errorId})` });
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json({ detail: `No route for ${req.method} ${req.path}` });
};
