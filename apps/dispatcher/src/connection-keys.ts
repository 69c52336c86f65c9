import type { SignatureTarget } from "@runbridge/common";
import type { DispatcherContext } from "./context";

/**
 * The SHA-256 of the token each runner connection on this dispatcher authenticated with: the key
 * of the signatures on what is sent to it (@runbridge/common's runner-signature), and what a token
 * rotation compares. Kept in this process only: a connection's `data` and handshake travel on
 * Redis — the socket.io adapter answers other processes' socket lookups with both — and whoever
 * could read them there could sign messages to the runner.
 */
const tokenHashes = new WeakMap<object, string>();

export function rememberTokenHash(socket: object, tokenHash: string): void {
  tokenHashes.set(socket, tokenHash);
}

/** The hash of the token a connection of this dispatcher authenticated with; undefined for one held elsewhere. */
export function tokenHashOf(socket: object): string | undefined {
  return tokenHashes.get(socket);
}

/** What a message to a connection of this dispatcher is signed for. */
export function localSignatureTarget(socket: { id: string }): SignatureTarget {
  const tokenHash = tokenHashOf(socket);
  if (tokenHash === undefined) throw new Error(`runner connection ${socket.id} is not one this dispatcher authenticated`);
  return { socketId: socket.id, tokenHash };
}

/**
 * What a message to a connection is signed for, wherever it is held: for one on another dispatcher,
 * the server's current token hash from PostgreSQL (a connection made with an older token is being
 * closed by the rotation). Null when the server no longer exists.
 */
export async function signatureTargetOf(ctx: DispatcherContext, serverId: string, socket: { id: string }): Promise<SignatureTarget | null> {
  const local = tokenHashOf(socket);
  if (local !== undefined) return { socketId: socket.id, tokenHash: local };
  const server = await ctx.prisma.server.findUnique({ where: { id: serverId }, select: { runnerTokenHash: true } });
  return server ? { socketId: socket.id, tokenHash: server.runnerTokenHash } : null;
}
