import { CloudProvider, RebootPath } from "@runbridge/contracts";
import type { Operation, Prisma } from "@runbridge/db";
import type { DispatcherContext } from "./context";
import { rebootDigitalOcean } from "./providers/digitalocean";
import { rebootHetzner } from "./providers/hetzner";
import { ProviderError } from "./providers/http";
import type { RebootOutcome, RebootRequest } from "./providers/types";
import { finishOperation } from "./results";

const PROVIDERS: Record<CloudProvider, { label: string; baseUrl: (ctx: DispatcherContext) => string; reboot: (r: RebootRequest) => Promise<RebootOutcome> }> = {
  [CloudProvider.Hetzner]: { label: "Hetzner Cloud API", baseUrl: (ctx) => ctx.config.HCLOUD_API_URL, reboot: rebootHetzner },
  [CloudProvider.DigitalOcean]: { label: "DigitalOcean API", baseUrl: (ctx) => ctx.config.DIGITALOCEAN_API_URL, reboot: rebootDigitalOcean },
};

interface Decision {
  path: RebootPath;
  reason: string;
  provider?: string;
  /** Provider path only: the result's stdout line. */
  detail?: string;
  /** Runner path after a failed provider call: the claim taken for the call is released. */
  release?: true;
}

/**
 * A reboot uses the server's cloud provider API when it has one, and falls
 * back to the runner's RUNBRIDGE_REBOOT_COMMAND without one or when the call
 * fails. The choice and its reason are stored once in the operation's
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
 * Returns "provider" when the reboot was done by the provider (the operation
 * is finished), "runner" when the runner must do it, "ended" when the
 * operation ended meanwhile (nothing more to do).
 */
export async function rebootViaProvider(ctx: DispatcherContext, op: Operation): Promise<"provider" | "runner" | "ended"> {
  const params = (op.params ?? {}) as Record<string, unknown>;
  if (params.reboot_path === RebootPath.Runner) return "runner";
  if (params.reboot_path === RebootPath.Provider) {
    await finishProviderReboot(ctx, op, String(params.reboot_detail ?? ""));
    return "provider";
  }

  const started = Date.now();
  const decision = await decide(ctx, op);
  if (!decision) return "ended"; // Cancelled or ended before the claim: the provider was not called.
  const data: Prisma.InputJsonObject = {
    ...(params as Prisma.InputJsonObject),
    reboot_path: decision.path,
    reboot_reason: decision.reason,
    ...(decision.provider ? { reboot_provider: decision.provider } : {}),
    ...(decision.detail ? { reboot_detail: decision.detail } : {}),
  };
  const { count } = await ctx.prisma.operation.updateMany({
    where: { id: op.id, status: "running" },
    data: { params: data, ...(decision.release ? { dispatchedAt: null } : {}) },
  });
  if (count === 0) return "ended"; // Ended meanwhile: nothing more to do.
  await ctx.prisma.auditEvent.create({
    data: {
      tenantId: op.tenantId,
      type: "operation.reboot_path",
      automationKeyId: op.automationKeyId,
      operationId: op.id,
      serverId: op.serverId,
      runId: op.runId,
      data: { path: decision.path, reason: decision.reason, provider: decision.provider ?? null },
    },
  });
  ctx.logger.info("reboot path chosen", { operationId: op.id, serverId: op.serverId, path: decision.path, reason: decision.reason });
  if (decision.path === RebootPath.Runner) return "runner";
  await finishProviderReboot(ctx, op, decision.detail ?? "", Date.now() - started);
  return "provider";
}

/** Null when the claim before the provider call failed (the operation is no longer running). */
async function decide(ctx: DispatcherContext, op: Operation): Promise<Decision | null> {
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
  if (!(await ctx.operations.markDispatched(op.id))) return null;
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
    const why = err instanceof ProviderError ? err.message : `unexpected error: ${String(err)}`;
    return { path: RebootPath.Runner, provider, reason: `the ${entry.label} call failed (${why}); fell back to the runner`, release: true };
  }
}

async function finishProviderReboot(ctx: DispatcherContext, op: Operation, detail: string, durationMs = 0): Promise<void> {
  await finishOperation(ctx, op.serverId, {
    operationId: op.id,
    status: "completed",
    exitCode: 0,
    stdout: `${detail}\n`,
    stderr: "",
    durationMs,
    startedAt: op.startedAt ?? new Date(Date.now() - durationMs),
  });
}
