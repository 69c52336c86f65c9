import { RUNNER_PRESENCE_TTL_SECONDS } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";

const DELETE_IF_OWNER = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

/**
 * Presence of runners in Redis, so gateways can answer 409 without asking a
 * dispatcher. Each dispatcher refreshes the keys of its own sockets; a key
 * expires on its own if its dispatcher dies.
 */
export class RunnerPresence {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: DispatcherContext) {}

  private marker(socketId: string): string {
    return `${this.ctx.config.DISPATCHER_ID}/${socketId}`;
  }

  async online(serverId: string, socketId: string): Promise<void> {
    await this.ctx.redis.set(this.ctx.keys.runnerPresence(serverId), this.marker(socketId), "EX", RUNNER_PRESENCE_TTL_SECONDS);
  }

  /** Only removes the key if it still names this socket (a newer connection may own it). */
  async offline(serverId: string, socketId: string): Promise<void> {
    await this.ctx.redis.eval(DELETE_IF_OWNER, 1, this.ctx.keys.runnerPresence(serverId), this.marker(socketId));
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
    for (const s of sockets) pipe.set(this.ctx.keys.runnerPresence(s.data.serverId), this.marker(s.id), "EX", RUNNER_PRESENCE_TTL_SECONDS);
    await pipe.exec().catch((err: unknown) => this.ctx.logger.warn("presence refresh failed", { error: String(err) }));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const sockets = [...this.ctx.io.of("/").sockets.values()];
    await Promise.all(sockets.map((s) => this.offline(s.data.serverId, s.id).catch(() => undefined)));
  }
}
