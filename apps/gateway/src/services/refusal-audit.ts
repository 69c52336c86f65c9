import type { ErrorRequestHandler } from "express";
import type { Redis } from "ioredis";
import type { Logger } from "@runbridge/common";
import type { RedisKeys } from "@runbridge/contracts";
import type { Prisma, PrismaClient } from "@runbridge/db";
import type { AutomationAuth } from "../auth/locals";
import { ScopeError } from "../errors";

/** A key's refusals of one reason (but for its rate limit, whose window is its own) are one event a minute. */
const REFUSAL_AUDIT_WINDOW_MS = 60_000;

/** After a failed write, how long this replica lets the refusals of that key and reason go before it tries again. */
const RETRY_AFTER_FAILURE_MS = 5000;

/** Why a request made with a known automation key was refused, but for its rate limit: one audit event per key, reason and minute. */
export type RefusalReason = "revoked" | "expired" | "ip_not_allowed" | "operation_not_allowed" | "server_not_allowed" | "credential_not_allowed";

type Key = { id: string; tenantId: string };

/**
 * The audit events of requests refused although their automation key was found: a key used past
 * its limit, revoked or expired but still in use, used from an address outside its allowlist, or
 * asking for an operation, server or credential outside its scope — the traces of a leaked key.
 * A flood writes one event per key and reason per window, not one per request: this replica's
 * memory answers most of it without a round trip, and across replicas a Redis SET NX decides which
 * one writes. A mark whose event could not be written is taken back (on this replica after a few
 * seconds), so a later refusal of the window tries again rather than the window going unrecorded.
 */
export class RefusalAudit {
  private readonly localMarks = new Map<string, number>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
  ) {}

  /** A 429: `rate_limited`, as the spec's audit trail names it, once per key and rate-limit window (`windowMs`, what is left of it). */
  rateLimited(key: Key, clientIp: string, windowMs: number, data: Prisma.InputJsonObject): Promise<void> {
    return this.record(key, clientIp, "rate_limited", "rate_limited", windowMs, data);
  }

  /** Any other refusal: `request.refused`, with the answer's status and detail and where the request went. */
  refused(key: Key, clientIp: string, reason: RefusalReason, error: { status: number; message: string }, request: { method: string; path: string }): Promise<void> {
    const data = { status: error.status, detail: error.message, method: request.method, path: request.path };
    return this.record(key, clientIp, "request.refused", reason, REFUSAL_AUDIT_WINDOW_MS, data);
  }

  private async record(key: Key, clientIp: string, type: "rate_limited" | "request.refused", reason: RefusalReason | "rate_limited", windowMs: number, data: Prisma.InputJsonObject): Promise<void> {
    const mark = `${key.id}:${reason}`;
    if (!(await this.claim(mark, windowMs))) return;
    try {
      await this.prisma.auditEvent.create({ data: { tenantId: key.tenantId, type, automationKeyId: key.id, clientIp, data: { reason, ...data } } });
    } catch (err) {
      this.logger.warn("could not record the audit event of a refused request", { automationKeyId: key.id, reason, error: String(err) });
      // Tried again by the next refusal after a pause, not by every one of a flood against a database in trouble.
      this.localMarks.set(mark, Date.now() + RETRY_AFTER_FAILURE_MS);
      await this.redis.del(this.keys.refusalAudited(mark)).catch(() => undefined);
    }
  }

  private async claim(mark: string, windowMs: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(windowMs));
    const now = Date.now();
    if ((this.localMarks.get(mark) ?? 0) > now) return false;
    if (this.localMarks.size > 10_000) this.localMarks.clear();
    this.localMarks.set(mark, now + ttl);
    try {
      return (await this.redis.set(this.keys.refusalAudited(mark), "1", "PX", ttl, "NX")) === "OK";
    } catch (err) {
      // Redis unreachable: each replica records its own window's event rather than none.
      this.logger.warn("refused-request audit de-duplication fell back to memory", { error: String(err) });
      return true;
    }
  }
}

/**
 * Error middleware of the Automation API: a request its key's scope refused (an operation, server
 * or credential outside it) is recorded before the error is answered. Other errors pass untouched.
 */
export function auditScopeRefusals(refusals: RefusalAudit): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    const auth = (res.locals as { auth?: AutomationAuth }).auth;
    if (!(err instanceof ScopeError) || auth?.kind !== "automation") return next(err);
    refusals.refused(auth.key, auth.clientIp, `${err.scope}_not_allowed`, err, { method: req.method, path: req.originalUrl.split("?")[0] ?? "" }).then(() => next(err), next);
  };
}
