import { randomUUID } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Express } from "express";
import proxyaddr from "proxy-addr";
import { withLogContext } from "@runbridge/common";
import { authenticateAutomation, rememberAuthentication } from "./auth/automation-auth";
import type { GatewayContext } from "./context";
import { HttpError } from "./errors";
import { writeHttpError } from "./middleware/error-handler";
import { beginRequest } from "./middleware/request-context";
import { AUTOMATION_BASE, OPENAPI_PATH } from "./routes/automation/paths";

/**
 * The gateway's HTTP entry, in front of Express. Every request gets its id,
 * access log line and metrics here; an Automation API request is also
 * authenticated here, and one refused at that stage (401, 403, 429) is
 * answered at once, without entering Express.
 *
 * Why: Express's router and response helpers cost a few hundred microseconds
 * per request on a small VM — several times the rest of a refusal — and
 * refusals come in floods (a pipeline with a revoked key in a retry loop, a
 * key over its rate limit, a scanner). Requests that pass continue into
 * Express with their authentication attached, so the rate limit is counted
 * once.
 */
export function frontDoor(ctx: GatewayContext, app: Express): RequestListener {
  // Express's own compiled `trust proxy` setting: req.ip and this agree by construction.
  const trust = app.get("trust proxy fn") as (addr: string, i: number) => boolean;
  return (req, res) => {
    let ip: string | undefined;
    // proxy-addr finds no address on a socket that is already gone: "" then, as Express's req.ip ?? "" gave.
    const clientIp = () => (ip ??= (proxyaddr(req, trust) as string | undefined) ?? "");
    // As Express reads it: a fragment (which clients do not send, but may) is not part of the path.
    const path = (req.url ?? "").split(/[?#]/)[0] ?? "";
    const requestId = beginRequest(req, res, ctx.logger, path, clientIp);
    // Shutting down: every answer closes its connection, so keep-alive clients reconnect to another gateway.
    if (ctx.draining.aborted) res.setHeader("Connection", "close");
    if (!needsAutomationKey(path)) {
      app(req, res);
      return;
    }
    withLogContext({ requestId }, () => {
      admit(req, res, path, clientIp).catch((err: unknown) => {
        // Unreachable unless writing the answer itself failed: never an unhandled rejection (it would end the process).
        const errorId = randomUUID();
        ctx.logger.error("unhandled error at the front door", { errorId, error: err instanceof Error ? err.stack : String(err) });
        if (res.headersSent) res.destroy();
        else writeHttpError(res, new HttpError(500, `Internal server error (error id ${errorId})`));
      });
    });
  };

  /** Authenticates, then answers a refusal here or hands the request to Express with the outcome. */
  async function admit(req: IncomingMessage, res: ServerResponse, path: string, clientIp: () => string): Promise<void> {
    let outcome: Parameters<typeof rememberAuthentication>[1];
    try {
      outcome = { auth: await authenticateAutomation(ctx, { authorization: req.headers.authorization, clientIp: clientIp(), method: req.method ?? "", path }, res) };
    } catch (error) {
      if (error instanceof HttpError) {
        writeHttpError(res, error);
        return;
      }
      // Not a refusal (PostgreSQL or Redis down, a bug): Express's error middleware answers it.
      outcome = { error };
    }
    rememberAuthentication(req, outcome);
    app(req, res);
  }
}

/**
 * Whether Express would hand this path to the Automation API's key check:
 * under its mount point, matched as Express matches one (case-insensitively,
 * at a segment boundary), and not the public API description. A request this
 * lets through that Express does route there (a URL in absolute form, say) is
 * authenticated by the middleware instead: this is a shortcut, never a bypass.
 */
export function needsAutomationKey(path: string): boolean {
  const p = path.toLowerCase();
  if (!p.startsWith(AUTOMATION_BASE)) return false;
  const rest = p.slice(AUTOMATION_BASE.length);
  if (rest !== "" && !rest.startsWith("/")) return false;
  return p !== OPENAPI_PATH && p !== `${OPENAPI_PATH}/`;
}

