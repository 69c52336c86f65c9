import Joi from "joi";
import { Limits } from "../limits";
import { OPERATION_TYPES, OperationStatus } from "../operations";
import { type CreatedWindowQuery, createdWindowKeys, uuid } from "./common";

/**
 * Automation API extensions beyond the spec (see docs/api-extensions.md):
 * cancel, live logs, list by run, Idempotency-Key.
 */

export interface CancelOperationRequest {
  /** Shown in the audit trail next to the cancel request. */
  reason?: string;
}

/** POST /operations/{id}/cancel: the body may be empty or `{}`; `reason` is optional. */
export const cancelOperationRequestSchema = Joi.object<CancelOperationRequest>({
  reason: Joi.string().min(1).max(Limits.cancelReasonMaxChars),
});

export interface AutomationListOperationsQuery extends CreatedWindowQuery {
  run_id?: string;
  server_id?: string;
  status?: OperationStatus;
  type?: string;
  cursor?: string;
  limit: number;
  /** false: each result without `stdout` and `stderr` (read them from GET /operations/{id}). */
  output: boolean;
}

/** GET /operations: the calling key's own operations, newest first. */
export const automationListOperationsQuerySchema = Joi.object<AutomationListOperationsQuery>({
  run_id: Joi.string().min(1).max(Limits.runIdMaxChars),
  server_id: uuid(),
  status: Joi.string().valid(...Object.values(OperationStatus)),
  type: Joi.string().valid(...OPERATION_TYPES),
  cursor: Joi.string().max(200),
  limit: Joi.number().integer().min(1).max(200).default(50),
  output: Joi.boolean().default(true),
  ...createdWindowKeys,
});

/** An SSE resume point: a Redis stream entry id (`<ms>-<seq>`) or `stored` (the Postgres fallback). */
export const LOG_EVENT_ID = /^(\d{1,20}-\d{1,20}|stored)$/;

export const operationLogsQuerySchema = Joi.object<{ last_event_id?: string }>({
  last_event_id: Joi.string().pattern(LOG_EVENT_ID).message('"last_event_id" must be an event id this API sent (like 1700000000000-0)'),
});

/** Idempotency-Key header: what clients may send (Stripe-like: up to 255 visible ASCII characters). */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
export const IDEMPOTENCY_TTL_HOURS = 24;
