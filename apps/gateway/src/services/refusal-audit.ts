import type { ErrorRequestHandler } from "express";
import type { Redis } from "ioredis";
import type { Logger } from "@runbridge/common";
import type { RedisKeys } from "@runbridge/contracts";
import type { Prisma, PrismaClient } from "@runbridge/db";
import type { AutomationAuth } from "../auth/locals";
import { ScopeError } from "../errors";

/** A key's refusals of one reason (but for its rate limit, whose window is its own) are one event a minute. */
export const REFUSAL_AUDIT_WINDOW_MS = 60_000;

/** What a request.refused event says of the request: the answer's status and detail, and where it went. */
export function refusalData(error: { status: number; message: string }, request: { method: string; path: string }): Prisma.InputJsonObject {
  return { status: error.status, detail: error.message, method: request.method, path: request.path };
}

/** After a failed write, how long this replica lets the refusals of that key and reason go before it tries again. */
const RETRY_AFTER_FAILURE_MS = 5000;

/** Why a request made with a known automation key was refused: one audit event per key, reason and window. */
export type RefusalReason = "rate_limited" | "revoked" | "expired" | "ip_not_allowed" | "operation_not_allowed" | "server_not_allowed" | "credential_not_allowed";

export interface Refusal {
  key: { id: string; tenantId: string };
  clientIp: string;
  reason: RefusalReason;
  /** How long this event stands for the key's refusals of this reason (the rate limit's window for a 429). */
  windowMs: number;
  /** `rate_limited` for a 429, as the spec's audit trail names it; `request.refused` for the rest. */
  type: "rate_limited" | "request.refused";
  data: Prisma.InputJsonObject;
}

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

  async record(r: Refusal): Promise<void> {
    const mark = `${r.key.id}:${r.reason}`;
    if (!(await this.claim(mark, r.windowMs))) return;
    try {
      await this.prisma.auditEvent.create({ data: { tenantId: r.key.tenantId, type: r.type, automationKeyId: r.key.id, clientIp: r.clientIp, data: { reason: r.reason, ...r.data } } });
    } catch (err) {
      this.logger.warn("could not record the audit event of a refused request", { automationKeyId: r.key.id, reason: r.reason, error: String(err) });
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
    const refusal: Refusal = {
      key: auth.key,
      clientIp: auth.clientIp,
      reason: `${err.scope}_not_allowed`,
      windowMs: REFUSAL_AUDIT_WINDOW_MS,
      type: "request.refused",
      data: refusalData(err, { method: req.method, path: req.originalUrl.split("?")[0] ?? "" }),
    };
    refusals.record(refusal).then(() => next(err), next);
  };
}
