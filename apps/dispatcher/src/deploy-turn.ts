import type { Operation } from "@runbridge/db";
import type { DispatcherContext } from "./context";

/** Where a deploy stands in its application's line (see deployTurn). */
export type DeployTurn = { kind: "now" } | { kind: "later"; waitsFor: string } | { kind: "unrecorded" };

/**
 * Two deployments of one application never run at the same time: a deploy
 * goes to its runner only once every earlier deployment of the application
 * is terminal. "Earlier" is the deployments' creation order, which the
 * gateway makes strictly increasing per application (it stamps each one under
 * a lock on the application row), so a later deploy always sees every earlier
 * one and the earliest pending one is never blocked: no two run together and
 * none waits forever.
 *
 * A deploy without a deployment row has no place in that order and may not
 * run: the gateway's write of the row failed, and it could not end the
 * operation either (or its job was held back until the write's outcome,
 * unknown to the gateway, had settled — see the gateway's startOperation).
 */
export async function deployTurn(ctx: DispatcherContext, op: Pick<Operation, "id">): Promise<DeployTurn> {
  const mine = await ctx.prisma.deployment.findUnique({ where: { operationId: op.id } });
  if (!mine) return { kind: "unrecorded" };
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
  return ahead ? { kind: "later", waitsFor: ahead.id } : { kind: "now" };
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
