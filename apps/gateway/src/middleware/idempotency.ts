import { createHash, createHmac } from "node:crypto";
import type { Request, RequestHandler, Response } from "express";
import { type RetryPauses, withRetries } from "@runbridge/common";
import { IDEMPOTENCY_KEY, IDEMPOTENCY_TTL_HOURS } from "@runbridge/contracts";
import { Prisma } from "@runbridge/db";
import { automationAuth, type AutomationAuth } from "../auth/locals";
import { assertOperationInScope } from "../auth/scopes";
import type { GatewayContext } from "../context";
import { HttpError, ValidationError } from "../errors";

const POLL_MS = 200;
const MAX_POLL_MS = 2_000;
const SWEEP_EVERY_MS = 10 * 60_000;

/**
 * `Idempotency-Key` on Automation API POSTs (an extension; see docs/api-extensions.md).
 *
 * The first request with a key claims it by inserting a row; the unique
 * constraint on (automation key, Idempotency-Key) makes concurrent retries race
 * safe: exactly one runs, the others wait for its response and get a replay of
 * it (`Idempotent-Replayed: true`). The same key with a different method, path
 * or body is refused with 422. Only 2xx responses are kept (an operation was
 * accepted); any other answer releases the key, so a retry of a refused
 * request (runner offline, 429, 503) really is tried again.
 *
 * Nothing secret is stored: the request is kept as an HMAC (keyed by the
 * encryption key, so low-entropy env values cannot be guessed from it), and
 * responses of this API never contain env values or passwords.
 */
export function idempotencyMiddleware(ctx: GatewayContext): RequestHandler {
  const hmacKey = createHash("sha256").update("runbridge idempotency\0").update(ctx.config.RUNBRIDGE_ENCRYPTION_KEY).digest();
  const maxWaitMs = ctx.config.EXEC_MAX_WAIT_SECONDS * 1000 + 5000;
  let lastSweep = 0;

  return async (req, res, next) => {
    if (req.method !== "POST") return next();
    const key = req.get("idempotency-key");
    if (key === undefined) return next();
    if (!IDEMPOTENCY_KEY.test(key)) throw new ValidationError('"Idempotency-Key" header must be 1 to 255 visible ASCII characters (no spaces)');
    const auth = automationAuth(res);
    const requestHash = createHmac("sha256", hmacKey).update(requestFingerprint(req)).digest("hex");
    const where = { automationKeyId_idempotencyKey: { automationKeyId: auth.key.id, idempotencyKey: key } };

    if (Date.now() - lastSweep > SWEEP_EVERY_MS) {
      lastSweep = Date.now();
      void ctx.prisma.idempotencyRecord.deleteMany({ where: { expiresAt: { lt: new Date() } } }).catch(() => undefined);
    }

    const deadline = performance.now() + maxWaitMs;
    let pollMs = POLL_MS;
    let clientGone = false;
    res.on("close", () => {
      clientGone = true;
    });
    for (;;) {
      try {
        const record = await ctx.prisma.idempotencyRecord.create({
          data: { automationKeyId: auth.key.id, idempotencyKey: key, requestHash, expiresAt: new Date(Date.now() + IDEMPOTENCY_TTL_HOURS * 3600_000) },
        });
        recordResponseOf(ctx, res, record.id);
        return next();
      } catch (err) {
        if ((err as { code?: string }).code !== "P2002") throw err;
      }
      // Someone holds the key: replay its response, or wait for it.
      for (;;) {
        const existing = await ctx.prisma.idempotencyRecord.findUnique({ where });
        if (!existing) break; // Released (the first attempt was refused): claim it again.
        if (existing.expiresAt.getTime() <= Date.now()) {
          await ctx.prisma.idempotencyRecord.deleteMany({ where: { id: existing.id, expiresAt: { lte: new Date() } } });
          break;
        }
        if (existing.requestHash !== requestHash) {
          throw new ValidationError(
            `Idempotency-Key "${key}" was already used with a different request (method, path or body) in the last ${IDEMPOTENCY_TTL_HOURS} h; send a new key for a new request`,
          );
        }
        if (existing.state === "completed" && existing.responseStatus !== null) {
          await assertReplayInScope(ctx, auth, existing.responseBody);
          res.set("Idempotent-Replayed", "true").status(existing.responseStatus).json(existing.responseBody);
          return;
        }
        if (clientGone) return;
        // A gateway shutting down does not hold a drain open for another request's answer: the
        // client retries (at another gateway) and gets the replay there.
        if (performance.now() > deadline || ctx.draining.aborted) {
          throw new HttpError(
            409,
            `A request with Idempotency-Key "${key}" is still in progress (or its server stopped before answering); retry later, or look the operation up by run_id`,
            { "Retry-After": "5" },
          );
        }
        // Backing off: a retry waiting for a long command would otherwise read PostgreSQL five
        // times a second for a minute, for one point of the key's rate limit.
        await new Promise((r) => setTimeout(r, pollMs));
        pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
      }
    }
  };
}

/**
 * A replay answers with an operation the key started: only while the key may
 * still read it, as GET /operations/{id} would (a key since narrowed to other
 * servers or operations gets the 403 that says so, not the stored output).
 */
async function assertReplayInScope(ctx: GatewayContext, auth: AutomationAuth, body: Prisma.JsonValue | null): Promise<void> {
  const operationId = body && typeof body === "object" && !Array.isArray(body) ? body.operation_id : undefined;
  if (typeof operationId !== "string") return;
  const op = await ctx.operations.findForTenant(operationId, auth.tenantId);
  // Deleted since (retention, its server deleted): the stored answer is all there is of it.
  if (op) assertOperationInScope(auth.key, op);
}

/** What makes two requests "the same": method, path and the body as canonical JSON (key order ignored). */
function requestFingerprint(req: Request): string {
  const path = req.originalUrl.split("?")[0] ?? "";
  return `${req.method}\0${path}\0${canonicalJson(req.body ?? null)}`;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** After a failed store or release: tried again after 1 s, doubling, for as long as 5 min. */
const STORE_RETRY_PAUSES: RetryPauses = { firstMs: 1_000, factor: 2, totalMs: 5 * 60_000 };

/**
 * Stores the response before it is sent, so a client that has the answer and
 * retries anyway always gets the replay: an accepted one (2xx), and one whose
 * operation may run although the answer is an error (OutcomeUnknownError).
 * Any other answer releases the key. One that fails (PostgreSQL failing over,
 * its pool exhausted: the same outage that often caused the error answer) is
 * logged, the response still goes out, and it is tried again in the
 * background: left undone, the key would answer every retry 409 "in progress"
 * until it expires (24 h), the client's retry of a refused request included.
 */
function recordResponseOf(ctx: GatewayContext, res: Response, recordId: string): void {
  const send = res.json.bind(res);
  res.json = ((body: unknown) => {
    const status = res.statusCode;
    const kept = (status >= 200 && status < 300) || res.locals.keepsIdempotencyKey === true;
    const store = () =>
      kept
        ? ctx.prisma.idempotencyRecord.update({
            where: { id: recordId },
            data: { state: "completed", responseStatus: status, responseBody: body === undefined || body === null ? Prisma.JsonNull : (body as Prisma.InputJsonValue) },
          })
        : ctx.prisma.idempotencyRecord.deleteMany({ where: { id: recordId } });
    void store()
      .then(
        () => undefined,
        (err: unknown) => {
          ctx.logger.warn("could not record an idempotent response; trying again", { recordId, status, error: String(err) });
          void retryStore(ctx, store, recordId, err);
        },
      )
      .finally(() => send(body));
    return res;
  }) as Response["json"];
}

function retryStore(ctx: GatewayContext, store: () => Promise<unknown>, recordId: string, error: unknown): Promise<void> {
  return withRetries(store, { pauses: STORE_RETRY_PAUSES, alreadyFailed: { error }, stopped: () => ctx.draining.aborted, unref: true }).then(
    () => {
      ctx.logger.info("recorded an idempotent response on a later try", { recordId });
    },
    () => {
      ctx.logger.error("could not record an idempotent response: its Idempotency-Key answers 409 in progress until it expires", { recordId });
    },
  );
}
