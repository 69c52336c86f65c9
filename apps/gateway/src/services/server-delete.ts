import type { Server } from "@runbridge/db";
import type { ManagementAuth } from "../auth/locals";
import type { GatewayContext } from "../context";
import { ConflictError, NotFoundError } from "../errors";
import { announceTokenRevoked } from "./runner-token";
import { managementEvent } from "./management-audit";

/**
 * Deletes a server with its operations, applications and deployments (the
 * audit trail keeps its events). Refused while any of its operations is still
 * running: deleting it would leave a command running on the machine with no
 * record to end it in.
 *
 * The server's row is locked first. An operation being recorded for it at the
 * same moment holds a key-share lock on that row (its foreign key) until it
 * commits, so either it committed first and is counted as running here, or it
 * waits and then fails on the missing server (answered 404, see
 * startOperation). Then every dispatcher is told to drop the runner's
 * connection, as after a token rotation: its token names no server any more.
 */
/**
 * The cascade over a long history takes its time (100,000 operations: about 0.6 s here); Prisma's
 * default of 5 s for a whole transaction would cut a large one off.
 */
const DELETE_TIMEOUT_MS = 30_000;

export async function deleteServer(ctx: GatewayContext, auth: ManagementAuth, server: Server): Promise<void> {
  await ctx.prisma.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM servers WHERE id = ${server.id}::uuid FOR UPDATE`;
    if (locked.length === 0) throw new NotFoundError(`Server ${server.id} not found`);
    const running = await tx.operation.count({ where: { serverId: server.id, status: "running" } });
    if (running > 0) {
      throw new ConflictError(
        `Server "${server.name}" (${server.id}) has ${running} operation${running === 1 ? "" : "s"} in progress; cancel ${running === 1 ? "it" : "them"} or wait for ${running === 1 ? "it" : "them"} to end, then delete the server`,
      );
    }
    const operations = await tx.operation.count({ where: { serverId: server.id } });
    await tx.server.delete({ where: { id: server.id } });
    await tx.auditEvent.create({ data: managementEvent(auth, "server.deleted", { server_name: server.name, operations_deleted: operations }, { serverId: server.id }) });
  }, { timeout: DELETE_TIMEOUT_MS });
  await announceTokenRevoked(ctx, server, "server deleted");
}
