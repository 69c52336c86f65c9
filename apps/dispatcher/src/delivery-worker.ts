import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import { FailureCause, FailureReason, JobCatalog, JobName, QueueName, cancelledOnRequest, deployEnvOverrideRefusal, envOverrideRefusedAtDelivery, type DeliverOperationJob, type OperationSecrets } from "@runbridge/contracts";
import { createRedis, isInfrastructureDown, withLogContext } from "@runbridge/common";
import { readEnvAllowlist, type DispatchClaim, type Operation } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { requestedCancelReason } from "./cancel-reason";
import { endUndelivered, holdForBusyRunner, noteDeferral, noteHeldBack, noteRunnerAway } from "./deferred";
import { BUSY_RETRY_MS, type DeliveryTicket } from "./delivery-gate";
import { deployTurn, holdDeliveryDeadline } from "./deploy-turn";
import { countDeliveryHeldBack, observeDelivery } from "./metrics";
import { startMessage } from "./process-spec";
import { OutageLog } from "./outage-log";
import { rebootViaProvider } from "./reboot-path";
import { finishOperation } from "./results";
import { RunnerNotConnected, RunnerUnreachable, hasLocalRunner, requestRunner } from "./runner-link";

class AlreadyFinished extends Error {}
/** A runner not connected: it failed quickly without holding a slot, and a new connection starts afresh (delivery-gate.ts). */
const isAbsence = (err: unknown) => err instanceof RunnerNotConnected;
const UNDELIVERED_OUTCOME = { runner_deferred: "runner-deferred", runner_unresponsive: "runner-unresponsive", runner_offline: "runner-offline", queue_backlog: "queue-backlog" } as const;
/** A delivery held back by the gate comes round again no sooner: its deadline check is then due. */
const MIN_HOLD_BACK_MS = 50;
/** How often a reboot re-reads the outcome of a provider call another delivery of it is making. */
const REBOOT_FOLLOW_MS = 1000;
/** The runner did not start it but asked for it again later (e.g. it is draining for a restart): BullMQ retries it. */
class RunnerAskedForLater extends Error {}

/**
 * Delivers each operation to its server's runner, wherever that runner is
 * connected. BullMQ may run this more than once for one job (stalls,
 * redelivery); that is safe: the operation row only moves forward (but for
 * a start the runner refused for now, see releaseRefusedClaim), and the
 * runner's ledger turns a repeated start into "already started".
 */
export async function deliverOperation(ctx: DispatcherContext, job: Job<DeliverOperationJob>, token?: string): Promise<string> {
  const { value: data, error } = JobCatalog[JobName.DeliverOperation].schema.validate(job.data);
  if (error) throw new UnrecoverableError(`malformed job: ${error.message}`);
  const ticket = ctx.deliveryGate.ticket(data.serverId);
  try {
    return await deliver(ctx, job, token, data, ticket);
  } catch (err) {
    // What its delivery deadline's failure says, should it come to that: its runner was looked for and was not there.
    if (err instanceof RunnerNotConnected || err instanceof RunnerUnreachable) await noteRunnerAway(ctx, data.operationId);
    throw err;
  } finally {
    ticket.leave();
  }
}

async function deliver(ctx: DispatcherContext, job: Job<DeliverOperationJob>, token: string | undefined, data: DeliverOperationJob, ticket: DeliveryTicket): Promise<string> {
  // The common case in one round trip: the runner is connected here, answers, and the operation needs
  // no turn-taking (deploy) or provider call (reboot). Claimed only while running and within its
  // delivery deadline; anything else takes the careful path below.
  // Asked beside the claim, not after it: a Redis round trip that adds no latency to a start.
  let cancelPending = isCancelPending(ctx, data.serverId, data.operationId);
  cancelPending.catch(() => undefined); // Awaited in sendStart, unless the delivery ends before.
  // Opened once, when a start is about to be sent: not for a deploy that comes round every second waiting its turn.
  let opened: OpenedInputs | undefined;
  const inputs = () => (opened ??= openInputs(ctx, data.sealed, data.operationId));
  // Not a login (its password is read at delivery) nor inputs that cannot be opened: either may end the
  // operation before it is sent, which needs to know whether an earlier attempt handed it over, and the
  // fast claim marks it handed over either way.
  if (data.type !== "deploy" && data.type !== "reboot" && data.type !== "registry_login" && inputs().ok && hasLocalRunner(ctx, data.serverId) && ticket.admit()) {
    const claimed = await ctx.operations.claimForDispatch(data.operationId);
    if (claimed) {
      const { claimedHere, ...op } = claimed;
      return sendStart(ctx, job, token, ticket, op, inputs(), cancelPending, { at: op.dispatchedAt as Date, claimedHere });
    }
  }

  const found = await ctx.operations.findForDelivery(data.operationId);
  if (!found) return "operation-missing";
  const { op } = found;
  if (op.status !== "running") return "already-finished";

  if (op.type === "deploy" && !op.dispatchedAt) {
    const turn = await deployTurn(ctx, op);
    if (turn.kind === "unrecorded") {
      const error = FailureReason.DeploymentNotRecorded;
      await finishOperation(ctx, op.serverId, { operationId: op.id, status: "failed", cause: FailureCause.DeploymentNotRecorded, error }, { only: "undispatched" });
      return "deployment-not-recorded";
    }
    if (turn.kind === "later") {
      // Waits its turn: re-checked every second, without using up delivery attempts.
      await holdDeliveryDeadline(ctx, op);
      ctx.logger.debug("deploy waits for an earlier deployment of its application", { operationId: op.id, waitsFor: turn.waitsFor });
      return comeRoundAfter(job, token, 1000);
    }
  }

  if (!op.dispatchedAt && found.pastDeliveryDeadline) {
    // Never handed to a runner, so it cannot be running: fail it rather than run it late (unless its deadline
    // was moved meanwhile: a deploy waiting its turn).
    const { ending } = await endUndelivered(ctx, op, { attempts: job.attemptsStarted });
    return UNDELIVERED_OUTCOME[ending.cause];
  }

  // Dispatched or not: a redelivered reboot must see the path an earlier attempt took (reboot-path.ts).
  if (op.type === "reboot") {
    const route = await rebootViaProvider(ctx, op);
    if (route === "provider") return "rebooted-by-provider";
    if (route === "unknown") return "reboot-outcome-unknown";
    if (route === "ended") return "already-finished";
    if (route === "later") {
      // Another delivery's provider call holds it with no outcome recorded yet (reboot-path.ts): followed by coming
      // round, which uses up no delivery attempt and holds neither a worker slot nor the job's lock meanwhile.
      ctx.logger.debug("reboot follows another delivery's provider call, whose outcome is not recorded yet", { operationId: op.id });
      return comeRoundAfter(job, token, REBOOT_FOLLOW_MS);
    }
    // A cancel asked while the provider call held the claim was only passed on (pending set): read it now.
    cancelPending = isCancelPending(ctx, op.serverId, op.id);
  }

  // A start handed over already is answered from the runner's ledger, and a reboot is never refused as busy:
  // neither waits for a busy runner's place.
  if (!ticket.admit(op.dispatchedAt !== null || op.type === "reboot")) {
    // Its runner did not answer the last start sent to it, or said it is busy (at its cap), and another
    // delivery is finding out whether that changed: this one gives its slot back to other servers'
    // operations, without a claim (delivery-gate.ts). An undispatched operation comes round again by
    // its delivery deadline. After a reboot's routing: one through the server's cloud provider needs no runner.
    // Whole milliseconds (the clock's reading is fractional), for BullMQ's delayed set.
    const wait = Math.ceil(Math.max(MIN_HOLD_BACK_MS, op.dispatchedAt ? ticket.retryInMs : Math.min(ticket.retryInMs, op.deliverBy.getTime() - ctx.clock.now())));
    const busy = ticket.heldFor === "busy" ? ticket.busyReason : null;
    countDeliveryHeldBack(busy === null ? "unresponsive" : "busy");
    // What its deadline's failure then says: the busy runner's reason (and it waits past that deadline, as
    // a start the runner refused as busy does), or that the runner was connected but did not answer.
    if (!op.dispatchedAt && busy !== null) {
      await noteDeferral(ctx, op.id, busy);
      await holdForBusyRunner(ctx, op.id);
    } else if (!op.dispatchedAt) await noteHeldBack(ctx, op.id, wait);
    return comeRoundAfter(job, token, wait);
  }

  // Marked as dispatched (only while still running) once a runner socket exists, before the
  // send: from then on no deadline may fail it, since it may be running.
  return sendStart(ctx, job, token, ticket, op, inputs(), cancelPending, async () => {
    const claim = await ctx.operations.markDispatched(op.id);
    if (!claim) throw new AlreadyFinished();
    return claim;
  });
}

type OpenedInputs = { ok: true; secrets: OperationSecrets } | { ok: false; error: string };

/** The operation's sealed inputs (env values, stdin), opened with this dispatcher's keys. */
function openInputs(ctx: DispatcherContext, sealed: string | undefined, operationId: string): OpenedInputs {
  if (!sealed) return { ok: true, secrets: {} };
  try {
    return { ok: true, secrets: JSON.parse(ctx.sealer.open(sealed, operationId)) as OperationSecrets };
  } catch (err) {
    return { ok: false, error: String(err) };
  }
}

/**
 * Ends an operation that cannot be sent (its inputs or its credential are gone) as never run — but only
 * one no earlier attempt handed over: that start may have reached the runner, which ran it while its
 * acknowledgement was lost. Such an operation is left running, for the overdue sweep to settle from the
 * runner's ledger (its real result, or result lost when the runner has no record of it).
 */
async function endUnsendable(ctx: DispatcherContext, op: Operation, ending: { cause: FailureCause; error: string }, outcome: string): Promise<string> {
  if (op.dispatchedAt) {
    ctx.logger.error("an operation handed to its runner before cannot be sent again; its outcome is left to the runner's ledger (the overdue sweep)", {
      operationId: op.id,
      serverId: op.serverId,
      reason: ending.error,
    });
    return `${outcome}-after-hand-over`;
  }
  await finishOperation(ctx, op.serverId, { operationId: op.id, status: "failed", ...ending }, { only: "undispatched" });
  return outcome;
}

/**
 * Hands the operation to its runner with its opened inputs; `claim` is the caller's dispatched mark, or
 * marks it dispatched (returning the mark) once a runner socket is known.
 */
async function sendStart(
  ctx: DispatcherContext,
  job: Job<DeliverOperationJob>,
  token: string | undefined,
  ticket: DeliveryTicket,
  op: Operation,
  inputs: OpenedInputs,
  cancelPending: Promise<boolean>,
  claim: DispatchClaim | (() => Promise<DispatchClaim>),
): Promise<string> {
  if (await cancelPending) return endRequestedCancel(ctx, ticket, op);
  if (!inputs.ok) return endUnsendable(ctx, op, { cause: FailureCause.InputsUnreadable, error: `could not open the operation's sealed inputs: ${inputs.error}` }, "unsealable");
  let secrets = inputs.secrets;
  if (op.type === "deploy" && secrets.env && !op.dispatchedAt) {
    // Checked again against the application as it is now, before it is first handed over: its
    // allowed_env_overrides may have been narrowed while the deploy waited its turn, and a gateway
    // of an earlier release does not know every name this one refuses.
    const refusal = deployEnvOverrideRefusal(Object.keys(secrets.env), await currentEnvAllowlist(ctx, op));
    if (refusal) {
      const error = envOverrideRefusedAtDelivery(refusal);
      await finishOperation(ctx, op.serverId, { operationId: op.id, status: "failed", cause: FailureCause.EnvOverrideRefused, error }, { only: "undispatched" });
      return "env-override-refused";
    }
  }
  if (op.type === "registry_login") {
    // The password is read from its credential now, not when the login was asked: a credential
    // deleted (or its password replaced) while the login waited is not used. A password sealed
    // in the job by an older gateway is ignored for the same reason.
    const password = await storedCredentialPassword(ctx, op);
    if (password === null) return endUnsendable(ctx, op, { cause: FailureCause.CredentialGone, error: FailureReason.CredentialGone }, "credential-gone");
    secrets = { ...secrets, password };
  }
  let held = typeof claim === "function" ? null : claim;
  const beforeSend = typeof claim === "function" ? async () => void (held = await claim()) : undefined;
  const reply = await ticket.request(() => requestRunner(ctx, op.serverId, "operation:start", startMessage(op, secrets), beforeSend), isAbsence).catch((err: unknown) => {
    if (err instanceof AlreadyFinished) return null;
    throw err;
  });
  if (!reply) return "already-finished";
  if (!reply.ok) {
    // Retried like an absent runner; the runner's notAfter check keeps it from starting past its delivery deadline.
    if (reply.retryable) {
      await noteDeferral(ctx, op.id, reply.error);
      if (held?.claimedHere) await releaseRefusedClaim(ctx, job, token, op.id, held.at);
      if (reply.busy) {
        // Waits for a place: after the release (only an undispatched operation's deadline moves), and without
        // using up delivery attempts (it may wait an hour). Meanwhile the gate holds back the server's other
        // waiting starts but one now and then.
        ticket.noteBusy(reply.error);
        await holdForBusyRunner(ctx, op.id);
        return comeRoundAfter(job, token, BUSY_RETRY_MS);
      }
      throw new RunnerAskedForLater(`runner of server ${op.serverId} asked for it later: ${reply.error}`);
    }
    await finishOperation(ctx, op.serverId, { operationId: op.id, status: "failed", cause: FailureCause.RunnerRefused, error: `runner refused the operation: ${reply.error}` });
    return "refused";
  }
  // A mark an earlier claim set may have been released meanwhile by its delivery (its own start refused, with this
  // one on its way): this start reached the runner, and the operation is marked handed over again.
  if (held && !held.claimedHere) await ctx.operations.markDispatched(op.id);
  if (reply.state === "started") {
    observeDelivery(op.type, op.createdAt, ctx.clock.now());
    // It had a place: there may be more (a reboot is taken whatever the runner holds, so it says nothing).
    if (op.type !== "reboot") ticket.notePlace();
  }
  ctx.logger.debug("operation delivered", { operationId: op.id, state: reply.state, attempt: job.attemptsMade + 1 });
  return reply.state;
}

/**
 * After a retryable refusal the operation goes back to undispatched until the next attempt claims
 * it again, so that it is treated as what it is — waiting for a runner: its delivery deadline fails
 * it as runner offline if no runner takes it, and a cancel ends it at once. Left marked, it would
 * wait for its timeout and the overdue sweep, and a cancel would only be passed on.
 *
 * Safe because the refusal says this start did not run: the runner answers a start its ledger
 * knows (already started or finished) before it refuses one, and a refusal writes nothing. It
 * cannot vouch for another start, so the mark stays when one may exist:
 * - the caller releases only a mark its own claim set (claimedHere). A mark it found set is an
 *   earlier claim's, whose start may still be on its way: a previous attempt's whose answer never
 *   came (the runner held it, e.g. measuring its clock, while this one was refused as busy), or a
 *   delivery's that stalled past its job lock. Released, that start would run unmarked, and a
 *   cancel or the delivery deadline end as never run an operation whose command runs;
 * - this delivery must still hold the job's lock (extended here, so no other dispatcher takes the
 *   job over before the release lands). One whose lock lapsed may hear its refusal after another
 *   dispatcher took the job and a new runner process accepted that start; that delivery then
 *   completes, and nothing would ever mark the operation dispatched again;
 * - a start was reported (started_at), or the mark is no longer the one this delivery claimed
 *   with (claimed afresh after an earlier release): then the release changes nothing.
 * What is left is a delivery that found this mark set, sending its start after the release: it marks
 * the operation again once the runner accepts (sendStart), as the runner's report of the start does.
 */
async function releaseRefusedClaim(ctx: DispatcherContext, job: Job<DeliverOperationJob>, token: string | undefined, operationId: string, dispatchedAt: Date): Promise<void> {
  if (token === undefined || (await job.extendLock(token, ctx.config.JOB_LOCK_MS)) !== 1) return;
  if (await ctx.operations.releaseDispatch(operationId, dispatchedAt)) ctx.logger.debug("refused start: no longer marked dispatched", { operationId });
}

/** Puts the job back for `ms` without using up one of its delivery attempts (BullMQ's DelayedError). */
async function comeRoundAfter(job: Job<DeliverOperationJob>, token: string | undefined, ms: number): Promise<never> {
  await job.moveToDelayed(Date.now() + ms, token);
  throw new DelayedError();
}

/** Whether a cancel the gateway could only pass on to the runner is still unconfirmed for this operation. */
function isCancelPending(ctx: DispatcherContext, serverId: string, operationId: string): Promise<boolean> {
  return ctx.redis.sismember(ctx.keys.pendingCancels(serverId), operationId).then((n) => n === 1);
}

/**
 * A cancel the gateway could only pass on to the runner (the operation was already marked
 * dispatched) and that no runner confirmed stays in the server's pending-cancel set. When its
 * start comes round again (a BullMQ retry after the runner dropped, its ack timed out, or a
 * draining runner asked for it later), sending it would run a command the API already answered
 * "cancel requested" for: it ends here as `cancelled` instead, with the gateway's wording.
 */
async function endRequestedCancel(ctx: DispatcherContext, ticket: DeliveryTicket, op: Operation): Promise<string> {
  const pending = ctx.keys.pendingCancels(op.serverId);
  // The start may have reached the runner after all (only its ack was lost): then the runner kills
  // it and its result arrives as `cancelled`. An absent or silent runner throws: retried like a start.
  const reason = await requestedCancelReason(ctx, op.id);
  const reply = await ticket.request(() => requestRunner(ctx, op.serverId, "operation:cancel", { operationId: op.id, ...(reason ? { reason } : {}) }), isAbsence);
  // Finished by the runner (the start reached it after all, and ran to its end): its result, which the
  // runner sends again, is the outcome — ending it as cancelled would record that it never ran.
  const finished = !reply.ok && reply.finished === true;
  if (!reply.ok && !finished) await finishOperation(ctx, op.serverId, { operationId: op.id, status: "cancelled", error: cancelledOnRequest(reason) });
  await ctx.redis.srem(pending, op.id);
  ctx.logger.info("start withheld: a cancel was requested", { operationId: op.id, runnerHadIt: reply.ok, runnerFinishedIt: finished });
  return reply.ok ? "cancel-sent" : finished ? "finished-before-cancel" : "cancelled-before-start";
}

/** The deploy's application's allowed_env_overrides now (null: any name not refused by default, or the application is gone). */
async function currentEnvAllowlist(ctx: DispatcherContext, op: Operation): Promise<string[] | null> {
  const applicationId = (op.params as Record<string, unknown> | null)?.application_id;
  if (typeof applicationId !== "string") return null;
  const app = await ctx.prisma.application.findFirst({ where: { id: applicationId, tenantId: op.tenantId }, select: { allowedEnvOverrides: true } });
  return app ? readEnvAllowlist(app.allowedEnvOverrides) : null;
}

async function storedCredentialPassword(ctx: DispatcherContext, op: Operation): Promise<string | null> {
  const credentialId = (op.params as Record<string, unknown> | null)?.credential_id;
  if (typeof credentialId !== "string") return null;
  const cred = await ctx.prisma.registryCredential.findFirst({ where: { id: credentialId, tenantId: op.tenantId } });
  if (!cred) return null;
  try {
    return ctx.sealer.open(cred.passwordCiphertext, cred.id);
  } catch {
    return null;
  }
}

export function createDeliveryWorker(ctx: DispatcherContext): Worker<DeliverOperationJob> {
  const connection = createRedis(ctx.config.REDIS_URL);
  connection.on("error", (err: Error) => ctx.logger.warn("worker redis error", { error: err.message }));
  // Probes of unresponsive runners hold at most a share of these slots, the rest left to servers that answer.
  ctx.deliveryGate.useSlots(ctx.config.WORKER_CONCURRENCY);
  const worker = new Worker<DeliverOperationJob>(QueueName.Operations, (job, token) => withLogContext({ operationId: job.data.operationId }, () => deliverOperation(ctx, job, token)), {
    connection,
    prefix: ctx.keys.bull,
    concurrency: ctx.config.WORKER_CONCURRENCY,
    // Deliveries are short; a lapsed lock means a dead dispatcher, and another takes the job over.
    lockDuration: ctx.config.JOB_LOCK_MS,
    stalledInterval: Math.ceil(ctx.config.JOB_LOCK_MS / 2),
    maxStalledCount: 100,
  });
  const storeOutage = new OutageLog(ctx.logger, "deliveries failing: a backing store (PostgreSQL or Redis) is unavailable; they are retried");
  worker.on("failed", (job, err) => {
    if (err instanceof RunnerNotConnected || err instanceof RunnerUnreachable || err instanceof RunnerAskedForLater) ctx.logger.debug("delivery will be retried", { operationId: job?.data.operationId, reason: err.message });
    else if (isInfrastructureDown(err)) {
      ctx.logger.debug("delivery attempt failed", { operationId: job?.data.operationId, error: err.message });
      storeOutage.failed(err.message);
    } else ctx.logger.warn("delivery attempt failed", { operationId: job?.data.operationId, error: err.message });
  });
  worker.on("error", (err) => ctx.logger.warn("worker error", { error: err.message }));
  return worker;
}
