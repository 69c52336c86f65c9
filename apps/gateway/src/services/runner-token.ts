import { TokenKind, generateToken, hashToken, revokedTokenDigest } from "@runbridge/common";
import { encodeTokenRevoked } from "@runbridge/contracts";
import type { Server } from "@runbridge/db";
import type { ManagementAuth } from "../auth/locals";
import type { GatewayContext } from "../context";
import { ConflictError, NotFoundError } from "../errors";
import { managementEvent } from "./management-audit";

/**
 * Rotates a server's runner token: a new one (returned, shown once, stored as
 * its hash only) replaces the old one in PostgreSQL, so no dispatcher accepts
 * a handshake with the old one any more; then every dispatcher is told, on a
 * Redis channel they all subscribe to, to drop the connections that were made
 * with it. A dispatcher that missed the message (its subscription was down)
 * checks its connections against PostgreSQL when the subscription is back.
 */
export async function rotateRunnerToken(ctx: GatewayContext, auth: ManagementAuth, server: Server): Promise<string> {
  const token = generateToken(TokenKind.RunnerToken);
  const rotated = await ctx.prisma.$transaction(async (tx) => {
    // Conditional on the hash this request read: of two rotations at the same moment one wins, and the
    // other does not announce as revoked a hash that was never the one its token replaced.
    const { count } = await tx.server.updateMany({ where: { id: server.id, runnerTokenHash: server.runnerTokenHash }, data: { runnerTokenHash: hashToken(token) } });
    // Deleted meanwhile (its delete raced this rotation): gone, not rotated by someone else.
    if (count === 0) return (await tx.server.count({ where: { id: server.id } })) === 0 ? "gone" : false;
    await tx.auditEvent.create({ data: managementEvent(auth, "server.runner_token_rotated", { server_name: server.name }, { serverId: server.id }) });
    return true;
  });
  if (rotated === "gone") throw new NotFoundError(`Server ${server.id} not found`);
  if (!rotated) throw new ConflictError(`The runner token of server ${server.id} was rotated by another request at the same moment; rotate again to get a token you can use`);
  // The new token is in force either way (and only this answer carries it): not a failed request.
  await announceTokenRevoked(ctx, server, "runner token rotated");
  return token;
}

/**
 * Tells every dispatcher to drop the connections made with the server's (old) token, after its
 * rotation or the server's deletion committed. A failure is logged, not thrown: the token is
 * refused at every new handshake either way, and dispatchers that missed this find the
 * connections when they check them against PostgreSQL (on re-subscribing, and periodically).
 */
export async function announceTokenRevoked(ctx: GatewayContext, server: Server, what: string): Promise<void> {
  try {
    const dispatchers = await ctx.redis.publish(ctx.keys.runnerTokenRevoked, encodeTokenRevoked({ serverId: server.id, tokenDigest: revokedTokenDigest(server.runnerTokenHash) }));
    ctx.logger.info(what, { serverId: server.id, dispatchers });
  } catch (err) {
    ctx.logger.error(`${what}, but the dispatchers could not be told to drop its runner's connections`, { serverId: server.id, error: String(err) });
  }
}
