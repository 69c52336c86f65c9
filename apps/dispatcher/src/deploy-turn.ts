import type { Operation } from "@runbridge/db";
import type { DispatcherContext } from "./context";

/**
 * Two deployments of one application never run at the same time: a deploy
 * goes to its runner only once every earlier deployment of the application
 * is terminal. "Earlier" is the deployments' creation order, which the
 * gateway makes strictly increasing per application (it stamps each one under
 * a lock on the application row), so a later deploy always sees every earlier
 * one and the earliest pending one is never blocked: no two run together and
 * none waits forever.
 *
 * Returns the id of the deployment this one waits for, or null when it is its turn.
 */
export async function deployBlockedBy(ctx: DispatcherContext, op: Operation): Promise<string | null> {
  const mine = await ctx.prisma.deployment.findUnique({ where: { operationId: op.id } });
  // No deployment row: the gateway failed between the two writes; nothing to order against.
  if (!mine) return null;
  const ahead = await ctx.prisma.deployment.findFirst({
    where: {
      applicationId: mine.applicationId,
      // The operation's status, not the deployment's: it is the source of truth on every path.
      operation: { status: "running" },
      id: { not: mine.id },
      OR: [{ createdAt: { lt: mine.createdAt } }, { createdAt: mine.createdAt, id: { lt: mine.id } }],
    },
    orderBy: [{ createdAt: "asc" }, { id: "asc" }],
    select: { id: true },
  });
  return ahead?.id ?? null;
}

/**
 * While a deploy waits its turn its runner may well be connected: its
 * delivery deadline moves forward so neither the delivery worker nor the
 * sweeper fails it as "runner offline" for time spent in line.
 */
export async function holdDeliveryDeadline(ctx: DispatcherContext, op: Operation): Promise<void> {
  // From PostgreSQL's clock, which every deadline is written and read with.
  const grace = ctx.config.DEPLOY_TURN_GRACE_SECONDS;
  await ctx.prisma.$executeRaw`
    UPDATE operations SET deliver_by = now() + make_interval(secs => ${grace}::integer)
    WHERE id = ${op.id}::uuid AND status = 'running' AND dispatched_at IS NULL AND deliver_by < now() + make_interval(secs => ${grace}::integer)`;
}
