import type { DispatcherContext, RunnerSocket, RunnerSocketData } from "./context";

type HandshakeInfo = Pick<RunnerSocket["handshake"], "address" | "headers" | "issued">;

/** What a runner connection is known by here, local or on another dispatcher (a socket.io RemoteSocket). */
export interface RunnerConnection {
  data: RunnerSocketData;
  handshake: HandshakeInfo;
}

/** The runner's address: as TRUST_PROXY reads it, or the peer's for a connection from an earlier dispatcher version. */
export function clientIpOf(c: RunnerConnection): string {
  return c.data.clientIp ?? c.handshake.address;
}

/**
 * Where a connection came from, for the audit trail: the client address (as TRUST_PROXY reads it), the peer's
 * address, and X-Forwarded-For as received — what the proxies claim, shown as such.
 */
function origin(c: RunnerConnection) {
  const forwarded = c.handshake.headers["x-forwarded-for"];
  return {
    client_ip: clientIpOf(c),
    // The peer's address (a load balancer's, when there is one in front).
    address: c.handshake.address,
    forwarded_for: (Array.isArray(forwarded) ? forwarded.join(", ") : forwarded) ?? null,
    dispatcher_id: c.data.dispatcherId ?? null,
    connected_at: new Date(c.handshake.issued).toISOString(),
  };
}

/**
 * Records that a newer connection of a server's runner sent older ones away:
 * normally the runner restarted or reconnected, but it is also what a
 * takeover with a leaked token looks like, so an operator must be able to see
 * it (a warning and a `runner.replaced` audit event). Written once per
 * replacement, not per connection, and never awaited: admitting a runner or
 * delivering an operation does not wait on it.
 */
export function recordReplacement(ctx: DispatcherContext, newer: RunnerConnection, older: readonly RunnerConnection[]): void {
  const { serverId, tenantId } = newer.data;
  const details = { new_connection: origin(newer), replaced: older.map(origin) };
  ctx.logger.warn("runner connection replaced by a newer one (unless the runner restarted or moved, its token may have leaked: rotate it)", { serverId, ...details });
  // Inside an async function, so that whatever fails — synchronously or not — is logged, never thrown at the caller.
  void (async () => {
    await ctx.prisma.auditEvent.create({ data: { tenantId, type: "runner.replaced", serverId, clientIp: details.new_connection.client_ip, data: details } });
  })().catch((err: unknown) => ctx.logger.warn("could not record runner.replaced", { serverId, error: String(err) }));
}
