import { Limits } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";

/** A cancel reason as it may travel to a runner: a non-empty string, bounded as the API bounds it. */
export function cancelReason(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value.slice(0, Limits.cancelReasonMaxChars) : undefined;
}

/**
 * The reason given with the operation's latest cancel request, from its audit trail: for a
 * cancel sent again without its pub/sub message (a runner reconnecting, a withheld start).
 */
export async function requestedCancelReason(ctx: DispatcherContext, operationId: string): Promise<string | undefined> {
  const audit = await ctx.prisma.auditEvent.findFirst({
    where: { operationId, type: "operation.cancel_requested" },
    orderBy: { createdAt: "desc" },
    select: { data: true },
  });
  return cancelReason((audit?.data as { reason?: unknown } | null)?.reason);
}
