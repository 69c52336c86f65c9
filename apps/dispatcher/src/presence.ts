import { RUNNER_PRESENCE_TTL_SECONDS } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";

const DELETE_IF_OWNER = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;
/** Renews the key if it names this socket, or sets it if no one holds it; never takes it from another connection. */
/** Points the key at another connection, only if it still names this one. */
const HAND_OVER_IF_OWNER = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("SET", KEYS[1], ARGV[2], "EX", ARGV[3]) else return 0 end`;
const REFRESH_IF_OWNER_OR_FREE = `local v = redis.call("GET", KEYS[1]) if v == false or v == ARGV[1] then return redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[2]) else return 0 end`;

/**
 * Presence of runners in Redis, so gateways can answer 409 without asking a
 * dispatcher. Each dispatcher refreshes the keys of its own sockets; a key
 * expires on its own if its dispatcher dies.
 */
export class RunnerPresence {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: DispatcherContext) {}

  private marker(socketId: string, dispatcherId = this.ctx.config.DISPATCHER_ID): string {
    return `${dispatcherId}/${socketId}`;
  }

  async online(serverId: string, socketId: string): Promise<void> {
    await this.ctx.redis.set(this.ctx.keys.runnerPresence(serverId), this.marker(socketId), "EX", RUNNER_PRESENCE_TTL_SECONDS);
  }

  /** Only removes the key if it still names this socket (a newer connection may own it). */
  async offline(serverId: string, socketId: string): Promise<void> {
    await this.ctx.redis.eval(DELETE_IF_OWNER, 1, this.ctx.keys.runnerPresence(serverId), this.marker(socketId));
  }

  /**
   * A connection of this dispatcher found, after it was shown connected, that a newer one of the
   * same runner exists (held here or elsewhere): the key goes to that one before this one is sent
   * away, so the runner never shows as offline in between.
   */
  async handOver(serverId: string, socketId: string, to: { dispatcherId: string; socketId: string }): Promise<void> {
    await this.ctx.redis.eval(HAND_OVER_IF_OWNER, 1, this.ctx.keys.runnerPresence(serverId), this.marker(socketId), this.marker(to.socketId, to.dispatcherId), RUNNER_PRESENCE_TTL_SECONDS);
  }

  start(): void {
    const period = (RUNNER_PRESENCE_TTL_SECONDS * 1000) / 3;
    this.timer = setInterval(() => void this.refresh(), period);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    const sockets = [...this.ctx.io.of("/").sockets.values()];
    if (sockets.length === 0) return;
    const pipe = this.ctx.redis.pipeline();
    // A connection this dispatcher has not sent away yet may be an older one than the key names (a newer one
    // admitted elsewhere while the two could not see each other): overwriting would point requests back at it.
    for (const s of sockets) pipe.eval(REFRESH_IF_OWNER_OR_FREE, 1, this.ctx.keys.runnerPresence(s.data.serverId), this.marker(s.id), RUNNER_PRESENCE_TTL_SECONDS);
    await pipe.exec().catch((err: unknown) => this.ctx.logger.warn("presence refresh failed", { error: String(err) }));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const sockets = [...this.ctx.io.of("/").sockets.values()];
    await Promise.all(sockets.map((s) => this.offline(s.data.serverId, s.id).catch(() => undefined)));
  }
}
