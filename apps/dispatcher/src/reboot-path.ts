import { CLOUD_PROVIDERS, CloudProvider, FailureReason, RebootPath } from "@runbridge/contracts";
import type { Operation } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { rebootDigitalOcean } from "./providers/digitalocean";
import { rebootHetzner } from "./providers/hetzner";
import { ProviderError } from "./providers/http";
import type { RebootOutcome, RebootRequest } from "./providers/types";
import {
  PROVIDER_ANSWER_RECORD_MS,
  failOutcomeUnknown,
  finishViaProvider,
  recordRunnerPath,
  recordedDecision,
  storeWithRetries,
  type RebootDecision,
} from "./reboot-record";

const PROVIDERS: Record<CloudProvider, { label: string; baseUrl: (ctx: DispatcherContext) => string; reboot: (r: RebootRequest) => Promise<RebootOutcome> }> = {
  [CloudProvider.Hetzner]: { label: "Hetzner Cloud API", baseUrl: (ctx) => ctx.config.HCLOUD_API_URL, reboot: rebootHetzner },
  [CloudProvider.DigitalOcean]: { label: "DigitalOcean API", baseUrl: (ctx) => ctx.config.DIGITALOCEAN_API_URL, reboot: rebootDigitalOcean },
};

/** For the claim's answer to reach the delivery that took it and its call to set out, on a loaded machine. */
const CLAIM_TO_CALL_MARGIN_MS = 5_000;

/**
 * How long after its claim a provider call's outcome may still be recorded by the delivery making it (30 s by
 * default): the call, storing its answer, and a margin. Past it, that delivery is taken to have stopped.
 */
const outcomeDueMs = (ctx: DispatcherContext): number => ctx.config.PROVIDER_API_TIMEOUT_MS + PROVIDER_ANSWER_RECORD_MS + CLAIM_TO_CALL_MARGIN_MS;

/** Where a delivery of a reboot goes from here (see rebootViaProvider). */
export type RebootRoute = "provider" | "runner" | "unknown" | "ended" | "later";

/**
 * A reboot uses the server's cloud provider API when it has one, and falls
 * back to the runner's RUNBRIDGE_REBOOT_COMMAND without one or when the call
 * surely did nothing (refused by an answer, or never sent). A call that may
 * have been acted on without a definite answer (time-out, connection cut
 * after the request, a gateway's 502/504) fails the operation as outcome
 * unknown instead: a fallback could reboot the server twice. The choice and its reason are stored once in the operation's
 * `params` (reboot_path, reboot_reason) and audited, so a redelivered job
 * never calls the provider twice and the caller can see what happened.
 *
 * The provider is only called once the operation is claimed like a runner
 * delivery (marked dispatched, only while still running): a cancel that came
 * first has ended it and the provider is never called; one that comes during
 * the call is passed on like for a dispatched operation instead of ending it
 * as `cancelled` while the provider reboots the server. A failed call releases
 * the claim together with recording the fallback, so the runner path behaves
 * as for any undispatched operation (delivery deadline, direct cancel).
 *
 * Every delivery of a reboot comes here first, dispatched or not (BullMQ
 * redelivers a job whose attempt failed or whose dispatcher died):
 * - runner path recorded: the runner's ledger makes its start idempotent;
 * - provider path recorded: finished (again), never handed to the runner;
 * - dispatched with no path recorded: only a provider call claims a reboot
 *   without recording its path first, and the delivery making that call may
 *   be alive still (stalled past its job lock, or cut off from Redis, while
 *   another took its job over). Until the call and the recording of its
 *   answer should be over (outcomeDueMs after the claim, by PostgreSQL's
 *   clock) this delivery follows the row, coming round without using up an
 *   attempt, and then takes the path recorded. Past that, the answer was lost
 *   with the attempt that made it: the server may have rebooted, rebooting it
 *   through the runner could do it twice, so the operation fails as outcome
 *   unknown.
 *
 * Two deliveries may run at once (one stalled past its job lock, and the one
 * that took the job over), and decide differently: a provider linked between
 * their reads of the server. Each write is conditional on the row as the
 * decision needs it (reboot-record.ts): the runner path is recorded only with
 * no path recorded and no provider call claimed by another delivery; a finish
 * through the provider, or as outcome unknown, only while the call's claim
 * holds with no path recorded. The first decision recorded (or claim taken)
 * wins; a delivery whose write is refused takes the path recorded, and never
 * acts on its own. Refused by a claim with no path recorded yet, it follows the
 * row as above rather than end its job: the delivery holding the claim may
 * have lost its job lock, and should the call be refused, its hand-off to the
 * runner failing for now (a draining runner, one not connected) would be
 * retried by no one — the reboot never sent, its job completed here.
 *
 * Returns "provider" when the reboot was done by the provider (the operation
 * is finished), "runner" when the runner must do it, "unknown" when it was
 * failed as outcome unknown, "ended" when the operation ended meanwhile
 * (nothing more to do), "later" when another delivery's provider call may
 * still record its outcome (the job comes round to follow it).
 */
export async function rebootViaProvider(ctx: DispatcherContext, op: Operation): Promise<RebootRoute> {
  const params = (op.params ?? {}) as Record<string, unknown>;
  const recorded = recordedDecision(params);
  if (recorded?.path === RebootPath.Runner) return "runner";
  if (recorded?.path === RebootPath.Provider) {
    // This version records the path with the finish, so this changes nothing; an older one
    // recorded it first and may have stopped before finishing.
    await finishViaProvider(ctx, op, recorded);
    return "provider";
  }
  if (op.dispatchedAt) {
    const claimedMsAgo = await ctx.operations.rebootCallClaimAgeMs(op.id);
    if (claimedMsAgo !== null && claimedMsAgo < outcomeDueMs(ctx)) return "later";
    if (claimedMsAgo !== null && (await failUnanswered(ctx, op, params))) return "unknown";
    // Read while another delivery held the claim, which recorded its outcome since (e.g. the runner path after a refused call).
    return followRecorded(ctx, op);
  }

  // Monotonic: a step of the wall clock during the provider's call would make a negative duration.
  const started = performance.now();
  const decision = await decide(ctx, op);
  // Cancelled or ended before the claim, or claimed by another delivery of it: the provider was not called here.
  if (!decision) return followRecorded(ctx, op);
  const durationMs = Math.round(performance.now() - started);
  // Only this attempt knows the provider's answer: storing it is retried here before giving up.
  const stored = await storeWithRetries(ctx, op, () =>
    decision.unanswered
      ? failOutcomeUnknown(ctx, op, decision, FailureReason.RebootProviderNoAnswer)
      : decision.path === RebootPath.Provider
        ? finishViaProvider(ctx, op, decision, durationMs)
        : recordRunnerPath(ctx, op, decision),
  );
  if (!stored) {
    // Ended meanwhile (e.g. failed as outcome unknown by a delivery that took over a lapsed job lock): the claim held
    // for the call kept any other delivery from recording a path.
    if (decision.path === RebootPath.Provider) {
      const what = decision.unanswered ? "the provider may have rebooted the server" : "the provider accepted the reboot";
      ctx.logger.warn(`${what}, but the operation had already ended`, { operationId: op.id, serverId: op.serverId });
      return "ended";
    }
    // Ended, or another delivery of it recorded its path or claimed a provider call first (a provider linked after this
    // one read the server): the reboot is that one's.
    ctx.logger.info("reboot path not recorded: another delivery of it decided first, or it ended", { operationId: op.id, serverId: op.serverId, path: decision.path });
    return followRecorded(ctx, op);
  }
  if (decision.unanswered) {
    ctx.logger.warn("reboot outcome unknown: the provider gave no definite answer; failed rather than rebooted through the runner", {
      operationId: op.id,
      serverId: op.serverId,
      reason: decision.reason,
    });
    return "unknown";
  }
  ctx.logger.info("reboot path chosen", { operationId: op.id, serverId: op.serverId, path: decision.path, reason: decision.reason });
  return decision.path;
}

/**
 * After this delivery's write or claim was refused (see rebootViaProvider): the path another delivery recorded, taken
 * as a redelivery takes it (a runner's ledger answers a second start "already started"); "ended" when it has ended;
 * "later" when no path is recorded: another delivery holds a provider call's claim, and its outcome is that one's to
 * record, which the job comes round to follow.
 */
async function followRecorded(ctx: DispatcherContext, op: Operation): Promise<RebootRoute> {
  const now = await ctx.operations.findById(op.id);
  if (!now || now.status !== "running") return "ended";
  const params = (now.params ?? {}) as Record<string, unknown>;
  if (recordedDecision(params)) return rebootViaProvider(ctx, now);
  if (params.reboot_path === undefined) return "later";
  // A path this release does not know (one recorded by a newer release, during a rollback): nothing here can take
  // it, and coming round would not change that. Left to the overdue sweep, as any operation no delivery ends.
  ctx.logger.error("reboot path recorded that this release does not know; leaving the operation to the overdue sweep", { operationId: op.id, path: String(params.reboot_path) });
  return "ended";
}

/**
 * A reboot claimed for a provider call whose answer was lost: failed with the provider the
 * gateway saw linked when it accepted the reboot (the one the call was made to, unless the link
 * changed in between). False when the claim no longer holds with no path recorded (ended, or the
 * delivery that made the call recorded its outcome after this one read the row).
 */
async function failUnanswered(ctx: DispatcherContext, op: Operation, params: Record<string, unknown>): Promise<boolean> {
  const provider = CLOUD_PROVIDERS.find((p) => p === params.provider);
  const label = provider ? PROVIDERS[provider].label : "cloud provider API";
  const reason = `a call to the ${label} was claimed for this reboot but no answer was recorded (the dispatcher making it stopped, or could not store the answer); it may have rebooted the server, so the runner's reboot command was not used`;
  if (!(await failOutcomeUnknown(ctx, op, { path: RebootPath.Provider, reason, ...(provider ? { provider } : {}) }))) return false;
  ctx.logger.warn("reboot outcome unknown: failed rather than rebooted through the runner", { operationId: op.id, serverId: op.serverId });
  return true;
}

/** Null when the claim before the provider call failed (the operation is no longer running). */
async function decide(ctx: DispatcherContext, op: Operation): Promise<RebootDecision | null> {
  const server = await ctx.prisma.server.findUniqueOrThrow({ where: { id: op.serverId } });
  const provider = server.provider as CloudProvider | null;
  const entry = provider ? PROVIDERS[provider] : undefined;
  if (!provider || !entry || !server.providerServerId || !server.providerTokenCiphertext) {
    return { path: RebootPath.Runner, reason: "no cloud provider is linked to this server; the runner's reboot command was used" };
  }
  let token: string;
  try {
    token = ctx.sealer.open(server.providerTokenCiphertext, server.id);
  } catch (err) {
    return { path: RebootPath.Runner, provider, reason: `the ${entry.label} token could not be decrypted (${(err as Error).message}); fell back to the runner` };
  }
  // Exclusive: a delivery that finds it claimed (another one is calling, or called) leaves it to that one.
  const claimSent = performance.now();
  if (!(await ctx.operations.claimRebootCall(op.id))) return null;
  // Another delivery that finds the claim follows it for outcomeDueMs only, reckoning the call to set out within
  // CLAIM_TO_CALL_MARGIN_MS of the claim: one made later (this process stalled after claiming) could reboot the server
  // after that delivery failed the operation as outcome unknown, and its caller rebooted it again. So it is not made.
  // Timed from before the claim was sent, which is no later than PostgreSQL's stamp on it.
  if (performance.now() - claimSent > CLAIM_TO_CALL_MARGIN_MS) {
    const reason = `the ${entry.label} call could not be made within ${CLAIM_TO_CALL_MARGIN_MS / 1000} s of its claim (this dispatcher stalled), so it was not made; fell back to the runner`;
    return { path: RebootPath.Runner, provider, reason, release: true };
  }
  try {
    const outcome = await entry.reboot({ baseUrl: entry.baseUrl(ctx), providerServerId: server.providerServerId, token, timeoutMs: ctx.config.PROVIDER_API_TIMEOUT_MS });
    const action = outcome.actionId ? `, action ${outcome.actionId}` : "";
    return {
      path: RebootPath.Provider,
      provider,
      reason: `server is linked to ${provider}`,
      detail: `reboot requested through the ${entry.label} (server ${server.providerServerId}${action})`,
    };
  } catch (err) {
    if (err instanceof ProviderError && err.outcomeUnknown) {
      const reason = `the ${entry.label} call got no definite answer (${err.message}); it may have rebooted the server, so the runner's reboot command was not used`;
      return { path: RebootPath.Provider, provider, reason, unanswered: true };
    }
    // An answer that refused the call, or a failure before the request left: the provider did nothing.
    const why = err instanceof ProviderError ? err.message : `unexpected error: ${String(err)}`;
    return { path: RebootPath.Runner, provider, reason: `the ${entry.label} call failed (${why}); fell back to the runner`, release: true };
  }
}
