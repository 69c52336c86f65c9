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
  /** The most operations a page holds: one with output can end sooner (see operationPageKeys). */
  limit: number;
  /** false: each result without `stdout` and `stderr` (read them from GET /operations/{id}). */
  output: boolean;
}

/**
 * The paging of both operation lists (the Automation API's and the management API's). With output, a
 * page also ends once its operations' stored output reaches the gateway's OPERATION_LIST_OUTPUT_MAX_BYTES
 * (200 operations of 2 MiB each were 400 MiB in memory and a JSON body past what V8 can hold): `limit`
 * is a maximum, and only `next_cursor: null` says the list has ended.
 */
export const operationPageKeys = {
  cursor: Joi.string().max(200).description("The previous page's next_cursor: this page continues after it"),
  limit: Joi.number()
    .integer()
    .min(1)
    .max(200)
    .default(50)
    .description("The most operations in the page; with output, fewer once their stdout and stderr reach the gateway's byte budget (16 MiB by default). Follow next_cursor until it is null"),
  output: Joi.boolean().default(true).description("false: each result without stdout and stderr; only limit then bounds a page"),
};

/** GET /operations: the calling key's own operations, newest first. */
export const automationListOperationsQuerySchema = Joi.object<AutomationListOperationsQuery>({
  run_id: Joi.string().min(1).max(Limits.runIdMaxChars),
  server_id: uuid(),
  status: Joi.string().valid(...Object.values(OperationStatus)),
  type: Joi.string().valid(...OPERATION_TYPES),
  ...operationPageKeys,
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
