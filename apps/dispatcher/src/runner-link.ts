import type { DispatcherToRunnerEvents } from "@runbridge/contracts";
import { serverRoom, type DispatcherContext, type RunnerSocket } from "./context";

type Events = Pick<DispatcherToRunnerEvents, "operation:start" | "operation:cancel" | "operation:query">;
type Payload<E extends keyof Events> = Parameters<Events[E]>[0];
type Reply<E extends keyof Events> = Parameters<Parameters<Events[E]>[1]>[0];

export class RunnerNotConnected extends Error {}

/** The server's runner socket when it is connected to this very dispatcher (no Redis round trip to know). */
export function localRunnerSocket(ctx: DispatcherContext, serverId: string): RunnerSocket | undefined {
  const nsp = ctx.io.of("/");
  // One runner per server: a newer connection replaces the older one (see socket-server.ts).
  const [id] = nsp.adapter.rooms.get(serverRoom(serverId)) ?? [];
  return id === undefined ? undefined : nsp.sockets.get(id);
}

export function hasLocalRunner(ctx: DispatcherContext, serverId: string): boolean {
  return localRunnerSocket(ctx, serverId) !== undefined;
}

/**
 * Where a server's runner socket is: on this dispatcher (sent to directly) or
 * on another one (reached through the Redis adapter). Null when none has it.
 */
async function locate(ctx: DispatcherContext, serverId: string): Promise<"local" | "remote" | null> {
  if (localRunnerSocket(ctx, serverId)) return "local";
  return (await ctx.io.in(serverRoom(serverId)).fetchSockets()).length > 0 ? "remote" : null;
}

/**
 * Sends an acknowledged event to a server's runner, wherever it is connected.
 * An absent runner is an explicit RunnerNotConnected, never a silent empty
 * reply. `beforeSend` runs once a runner socket is known to exist.
 */
export async function requestRunner<E extends keyof Events>(
  ctx: DispatcherContext,
  serverId: string,
  event: E,
  payload: Payload<E>,
  beforeSend?: () => Promise<void>,
): Promise<Reply<E>> {
  const where = await locate(ctx, serverId);
  if (!where) throw new RunnerNotConnected(`runner of server ${serverId} is not connected`);
  await beforeSend?.();
  const timeout = ctx.config.RUNNER_ACK_TIMEOUT_MS;
  const room = serverRoom(serverId);
  // The typed emitWithAck overloads do not survive a generic event name; the shapes come from Events.
  // The socket found before beforeSend may have gone meanwhile: look again rather than emit into a closed one.
  const socket = where === "local" ? localRunnerSocket(ctx, serverId) : undefined;
  if (socket) {
    const target = socket.timeout(timeout) as unknown as { emitWithAck(ev: E, p: Payload<E>): Promise<Reply<E>> };
    return target.emitWithAck(event, payload);
  }
  const target = ctx.io.to(room).timeout(timeout) as unknown as { emitWithAck(ev: E, p: Payload<E>): Promise<Reply<E>[]> };
  const replies = await target.emitWithAck(event, payload);
  const reply = replies[0];
  if (reply === undefined) throw new RunnerNotConnected(`runner of server ${serverId} went away before acknowledging`);
  return reply;
}
