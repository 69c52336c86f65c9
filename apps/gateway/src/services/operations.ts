import { randomUUID } from "node:crypto";
import { FailureCause, FailureReason, JobCatalog, JobName, Limits, OperationStatus, type DeliverOperationJob, type OperationSecrets, type OperationType, type RunContext } from "@runbridge/contracts";
import type { Response } from "express";
import { reviveOperation, type Operation, type Prisma, type TargetServer } from "@runbridge/db";
import type { AutomationAuth } from "../auth/locals";
import { assertServerAllowed } from "../auth/scopes";
import type { GatewayContext } from "../context";
import { ConflictError, NotFoundError, OperationNotStartedError, OutcomeUnknownError } from "../errors";
import { countOperationAccepted, countOperationFinished } from "../metrics";

export interface NewOperation {
  serverId: string;
  type: OperationType;
  /** What the audit trail shows as "the command that was executed". */
  command: string | null;
  /** Non-secret parameters, stored on the operation and in the audit record. */
  params?: Record<string, unknown>;
  workingDirectory?: string;
  timeoutSeconds: number;
  /** Travels to the runner sealed; only the key names are stored. */
  secrets?: OperationSecrets;
  runId?: string;
  runContext?: RunContext;
}

/**
 * loadTargetServer then assertRunnerConnected, with the PostgreSQL lookup and
 * the Redis presence check in flight together (404 and 403 still win over 409).
 */
export async function loadConnectedServer(ctx: GatewayContext, auth: AutomationAuth, serverId: string): Promise<TargetServer> {
  const { server, connected } = await loadServerWithRunner(ctx, auth, serverId);
  if (!connected) throw noConnectedRunner(server);
  return server;
}

/** loadTargetServer and runnerConnected, the lookup and the presence check in flight together (404 and 403 first). */
export async function loadServerWithRunner(ctx: GatewayContext, auth: AutomationAuth, serverId: string): Promise<{ server: TargetServer; connected: boolean }> {
  const presence = ctx.presence.isConnected(serverId);
  presence.catch(() => undefined); // Awaited below unless the lookup fails first.
  const server = await loadTargetServer(ctx, auth, serverId);
  return { server, connected: await runnerConnected(ctx, server, await presence) };
}

/** The server of the caller's tenant, with the key's server scope enforced. */
export async function loadTargetServer(ctx: GatewayContext, auth: AutomationAuth, serverId: string): Promise<TargetServer> {
  const server = await ctx.operations.findServerForTenant(serverId, auth.tenantId);
  if (!server) throw new NotFoundError(`Server ${serverId} not found`);
  assertServerAllowed(auth.key, server.id);
  return server;
}

/** PostgreSQL's SQLSTATE for a row whose foreign key names no row (with the constraint's name in the error). */
const FOREIGN_KEY_VIOLATION = "23503";

/** A runner seen this recently is probably reconnecting (e.g. a dispatcher restart): worth a short wait. */
const RECONNECT_WINDOW_MS = 60_000;
const RECONNECT_GRACE_MS = 3_000;

export async function assertRunnerConnected(ctx: GatewayContext, server: TargetServer): Promise<void> {
  if (!(await runnerConnected(ctx, server))) throw noConnectedRunner(server);
}

function noConnectedRunner(server: TargetServer): ConflictError {
  return new ConflictError(`Server "${server.name}" (${server.id}) has no connected runner; start the runner agent on it and retry`);
}

/**
 * Whether the server's runner is connected. During a rolling restart of dispatchers, runners are away for about a
 * second: one seen within the last minute is waited for a moment rather than fail a CI step; a server never or long
 * not seen is answered at once.
 */
export async function runnerConnected(ctx: GatewayContext, server: TargetServer, connectedNow?: boolean): Promise<boolean> {
  if (connectedNow ?? (await ctx.presence.isConnected(server.id))) return true;
  if (server.lastSeenAgoMs !== null && server.lastSeenAgoMs < RECONNECT_WINDOW_MS) {
    const deadline = performance.now() + RECONNECT_GRACE_MS;
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      if (await ctx.presence.isConnected(server.id)) return true;
    }
  }
  return false;
}

/**
 * Records the operation and its audit event in one transaction, then enqueues
 * its delivery. The row exists before the job, so the job can never point at
 * nothing. If the enqueue fails, the operation is ended as failed — only while
 * no dispatcher has claimed it — and only then does the caller get a 503 "not
 * started": a failed enqueue does not prove the job is absent (its reply can
 * be lost after Redis ran it), and a client told "not started" retries. When
 * it cannot be ended (already claimed, or PostgreSQL unreachable too), it is
 * answered as accepted: a claimed job runs, and an absent one is re-enqueued
 * by the dispatchers' sweeper.
 *
 * `beforeEnqueue` runs between the two, to register a completion waiter or
 * write rows that must exist before delivery (a deploy's deployment row). It
 * returns ENQUEUE_WHEN_SETTLED when that write's outcome is unknown (its
 * commit's answer may have been lost): the job is then held back a few
 * seconds, until the outcome has settled in PostgreSQL, and the dispatcher
 * that takes it delivers the operation or ends it from what PostgreSQL holds.
 * Held in the queue rather than left to the sweeper's re-enqueue, it keeps its
 * sealed inputs (a deploy's env_overrides), which only the job carries.
 */
export async function startOperation(
  ctx: GatewayContext,
  auth: AutomationAuth,
  input: NewOperation,
  beforeEnqueue?: (op: Operation) => void | typeof ENQUEUE_WHEN_SETTLED | Promise<void | typeof ENQUEUE_WHEN_SETTLED>,
): Promise<Operation> {
  const envKeys = Object.keys(input.secrets?.env ?? {});
  const params = (input.params ?? {}) as Prisma.InputJsonObject;
  const runContext = input.runContext as Prisma.InputJsonObject | undefined;
  // The row and its audit event in one statement (the hot path: see OperationStore).
  // When the delivery deadline started running (PostgreSQL's now() at the insert), in this process's monotonic time.
  const insertedAt = performance.now();
  const id = randomUUID();
  // Set when the insert went unconfirmed but the row turned out to be there and already taken (see settleUnconfirmed).
  let recovered = false;
  const operation = await ctx.operations
    .insertWithAudit({
      id,
      tenantId: auth.tenantId,
      serverId: input.serverId,
      automationKeyId: auth.key.id,
      type: input.type,
      command: input.command,
      params,
      workingDirectory: input.workingDirectory ?? null,
      timeoutSeconds: input.timeoutSeconds,
      envKeys,
      runId: input.runId ?? null,
      runContext: (runContext as Record<string, unknown> | undefined) ?? null,
      clientIp: auth.clientIp,
      deliverWithinSeconds: ctx.config.RUNNER_DELIVERY_TIMEOUT_SECONDS,
      redisPrefix: ctx.config.REDIS_PREFIX,
      audit: {
        operation_type: input.type,
        command: input.command,
        params,
        working_directory: input.workingDirectory ?? null,
        timeout_seconds: input.timeoutSeconds,
        env_keys: envKeys,
        run_context: runContext ?? null,
      },
    })
    .catch(async (err: unknown) => {
      // The server was deleted between its lookup and this insert (see server-delete.ts).
      const e = err as { code?: unknown; constraint?: unknown };
      if (e.code === FOREIGN_KEY_VIOLATION && e.constraint === "operations_server_id_fkey") throw new NotFoundError(`Server ${input.serverId} not found`);
      if (!insertOutcomeUnknown(err)) throw err;
      const landed = await settleUnconfirmed(ctx, id, input.serverId, err);
      recovered = true;
      return landed;
    });

  if (recovered) {
    // Recorded after all, and already taken by a dispatcher (a sweeper queued it meanwhile) or ended: this request's
    // operation, answered as accepted; its job exists or is not needed.
    await beforeEnqueue?.(operation);
    ctx.logger.warn("an unconfirmed insert had landed and was already taken; answering it as accepted", { operationId: operation.id, status: operation.status });
    return operation;
  }
  const unsettled = (await beforeEnqueue?.(operation)) === ENQUEUE_WHEN_SETTLED;
  if (unsettled) ctx.logger.warn("operation accepted with its job held back until a write whose outcome is unknown has settled", { operationId: operation.id, type: operation.type });
  const secrets = input.secrets && Object.keys(input.secrets).length > 0 ? input.secrets : undefined;
  const job: DeliverOperationJob = {
    operationId: operation.id,
    serverId: operation.serverId,
    type: input.type,
    ...(secrets ? { sealed: ctx.sealer.seal(JSON.stringify(secrets), operation.id) } : {}),
  };
  const entry = JobCatalog[JobName.DeliverOperation];
  try {
    // Held back no longer than half the delivery deadline, of which the write that did not answer may
    // already have used a good part (a connection that dies waits for its query timeout).
    const delay = unsettled ? Math.max(0, Math.min(UNSETTLED_WRITE_DELAY_MS, Math.round((ctx.config.RUNNER_DELIVERY_TIMEOUT_SECONDS * 1000) / 2 - (performance.now() - insertedAt)))) : 0;
    await ctx.queue.add(JobName.DeliverOperation, job, { ...entry.options, jobId: operation.id, ...(delay > 0 ? { delay } : {}) });
  } catch (err) {
    ctx.logger.error("enqueue failed", { operationId: operation.id, error: String(err) });
    if (await failUndispatched(ctx, operation, FailureCause.NotQueued, "could not be queued: the job queue (Redis) was unreachable")) {
      throw new OperationNotStartedError(operation.id, "The job queue is unreachable; the operation was not started. Retry shortly.");
    }
    ctx.logger.warn("enqueue failed but the operation could not be ended as not started; answering it as accepted", { operationId: operation.id });
  }
  countOperationAccepted(operation.type);
  ctx.logger.info("operation accepted", { operationId: operation.id, type: operation.type, serverId: operation.serverId, runId: operation.runId });
  return operation;
}

/**
 * Whether a failed insert may have committed all the same: its connection was lost after the statement
 * was sent (ended, reset, or no answer within the query timeout), or the server ended the connection,
 * which it can do between a commit and its answer. An error PostgreSQL answered (a constraint, a statement
 * timeout) rolled the statement back; a failure to connect sent nothing; any other error is a bug (a 500).
 */
function insertOutcomeUnknown(err: unknown): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return /^(08|57P0)/.test(code);
  if (code === "ECONNRESET" || code === "EPIPE") return true;
  return typeof message === "string" && /^(Connection terminated unexpectedly|Query read timeout)/.test(message);
}

/** How long past its delivery deadline the sweeper might still take an unconfirmed row for a lost job: a late commit, clocks. */
const UNCONFIRMED_MARK_MARGIN_SECONDS = 120;

/**
 * An insert whose outcome is unknown may have recorded the operation. Nothing queues it, but the
 * dispatchers' sweeper would take such a row for one whose job Redis lost and queue it — after the
 * client, told to retry, had started it again. So the row is marked in Redis, where the sweeper looks
 * before it re-enqueues (it fails a marked one instead), and ended here if PostgreSQL answers now.
 * "Not started" is answered only with PostgreSQL's word besides the mark: the row was ended here, or
 * PostgreSQL read it absent (a commit landing after that read — only a connection that delivers the
 * statement late, past its statement timeout, could — is then stopped by the mark alone). The mark alone
 * never is: Redis can lose it (a restart without persistence, a failover) before a sweeper sees a row
 * that landed, which is then queued and runs while the client's retry runs too. A row already taken (a sweeper queued it
 * while the insert hung for its query timeout) is returned: the request's operation, answered as
 * accepted. Otherwise the outcome is unknown, and the answer is a 500 that clients do not retry by
 * themselves and an Idempotency-Key keeps, naming the operation to look up.
 */
async function settleUnconfirmed(ctx: GatewayContext, id: string, serverId: string, err: unknown): Promise<Operation> {
  ctx.logger.warn("an operation's insert went unconfirmed; settling it", { operationId: id, error: String(err) });
  const ttl = ctx.config.RUNNER_DELIVERY_TIMEOUT_SECONDS + UNCONFIRMED_MARK_MARGIN_SECONDS;
  const marked = await ctx.redis.set(ctx.keys.operationUnconfirmed(id), "1", "EX", ttl).then(
    () => true,
    (e: unknown) => {
      ctx.logger.warn("could not mark an unconfirmed operation in Redis", { operationId: id, error: String(e) });
      return false;
    },
  );
  const notStarted = () => new OperationNotStartedError(id, `PostgreSQL did not confirm recording the operation (${id}); it was not started and will not be. Retry shortly.`);
  if (await failUndispatched(ctx, { id, serverId }, FailureCause.NotConfirmed, FailureReason.NotConfirmed)) throw notStarted();
  const row = await ctx.operations.findById(id).catch(() => undefined);
  if (row) return row;
  // Absent as PostgreSQL read it (a commit landing after this read is failed by the sweeper, which finds the mark).
  // Unread (undefined), it may have landed, and only the mark would keep it from running: not enough for "not started".
  if (row === null && marked) throw notStarted();
  throw new OutcomeUnknownError(
    `PostgreSQL did not confirm recording the operation (${id}), and it could not be settled: it may still run. Check GET /api/automation/v1/operations/${id} before retrying.`,
  );
}

/** What a `beforeEnqueue` returns when a write it made has an unknown outcome (see startOperation). */
export const ENQUEUE_WHEN_SETTLED = Symbol("enqueue when settled");

/**
 * How long a job waits when a write before it had an unknown outcome: a commit whose answer was lost
 * has landed or not within milliseconds; the rest is margin for a PostgreSQL that answers slowly.
 */
const UNSETTLED_WRITE_DELAY_MS = 5_000;

/**
 * Ends as `failed`, with `error` and its audit event, an operation no
 * dispatcher has claimed (the claim requires `running`, so once this lands
 * the operation can never run). True only if it did; false when it was
 * already claimed or ended, or PostgreSQL could not be reached — then nobody
 * may be told it did not start.
 */
export async function failUndispatched(ctx: GatewayContext, op: Pick<Operation, "id" | "serverId">, cause: FailureCause, error: string): Promise<boolean> {
  try {
    const ended = await ctx.operations.finish(op.serverId, { operationId: op.id, status: OperationStatus.Failed, error }, "undispatched");
    if (ended) countOperationFinished({ status: OperationStatus.Failed, cause }, ended.status, ended.type);
    return ended !== null;
  } catch (err) {
    ctx.logger.warn("could not end an operation that was not started", { operationId: op.id, error: String(err) });
    return false;
  }
}

/**
 * For the synchronous endpoints (exec, restart, registry logout): starts the
 * operation with a completion waiter registered before its job exists, and
 * holds the request until it ends or the wait bound passes (the client then
 * polls). Stops waiting if the client goes away.
 *
 * Once the operation is queued, nothing may answer as if it had not started:
 * a failure while only waiting (PostgreSQL unreachable for a poll) answers it
 * as running, so the client polls — and an Idempotency-Key, which is released
 * by any error answer, cannot let a retry run the command a second time.
 */
export async function runAndWait(ctx: GatewayContext, auth: AutomationAuth, input: NewOperation, res: Response): Promise<Operation> {
  let registration: ReturnType<GatewayContext["waiter"]["register"]> | undefined;
  let op: Operation;
  try {
    op = await startOperation(ctx, auth, input, (created) => {
      registration = ctx.waiter.register(created.id);
    });
  } catch (err) {
    // Not started (e.g. the enqueue failed): no notification will ever come for it.
    registration?.cancel();
    throw err;
  }
  if (!registration) throw new Error("completion waiter was not registered");
  const waiting = registration;
  res.on("close", () => waiting.cancel());
  // Gone while the operation was being started: its 'close' has been, and will not come again.
  if (res.destroyed) waiting.cancel();
  try {
    return await waitForOperation(ctx, op.id, waiting, syncWaitMs(ctx, input.timeoutSeconds));
  } catch (err) {
    ctx.logger.warn("could not wait for an accepted operation; answering it as running", { operationId: op.id, error: String(err) });
    return op;
  }
}

/** Holds the request until the operation is terminal or `maxMs` passes; returns the freshest row. */
export async function waitForOperation(
  ctx: GatewayContext,
  operationId: string,
  registration: ReturnType<GatewayContext["waiter"]["register"]>,
  maxMs: number,
): Promise<Operation> {
  const load = async () => {
    const op = await ctx.operations.findById(operationId);
    if (!op) throw new Error(`operation ${operationId} vanished`);
    return op;
  };
  const finishedRow = await registration.wait(maxMs, async () => (await load()).status !== "running");
  // The dispatcher's notification carries the finished row when it is small enough: no read back.
  return finishedRow ? reviveOperation(finishedRow) : load();
}

/** Sync wait bound: the operation's own timeout plus a small grace, capped for proxies. */
export function syncWaitMs(ctx: GatewayContext, timeoutSeconds: number): number {
  return Math.min(timeoutSeconds * 1000 + 3000, ctx.config.EXEC_MAX_WAIT_SECONDS * 1000);
}

/**
 * Room a logout's time-out leaves inside the request's hold: the runner's SIGTERM-to-SIGKILL grace
 * (RUNBRIDGE_KILL_GRACE_SECONDS, 5 s by default) and the result's way back.
 */
const LOGOUT_ANSWER_MARGIN_SECONDS = 10;
const LOGOUT_MIN_TIMEOUT_SECONDS = 5;

/**
 * A registry logout's time-out. The spec answers every logout synchronously, as `completed` with an
 * exit code (124 when it timed out): with the default 60 s, a `docker logout` hung on its credential
 * helper outlasted the request's hold (EXEC_MAX_WAIT_SECONDS, 55 s by default) and was answered
 * `running` instead, leaving the CI post-step to poll. So it ends early enough to be answered within
 * the hold; 60 s where the hold allows it.
 */
export function logoutTimeoutSeconds(ctx: GatewayContext): number {
  const fits = ctx.config.EXEC_MAX_WAIT_SECONDS - LOGOUT_ANSWER_MARGIN_SECONDS;
  return Math.min(Limits.timeoutDefaultSeconds, Math.max(LOGOUT_MIN_TIMEOUT_SECONDS, fits));
}
