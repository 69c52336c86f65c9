import { RUNNER_PRESENCE_TTL_SECONDS } from "@runbridge/contracts";
import type { DispatcherContext } from "./context";

/**
 * KEYS: the presence key, its admission-number key. ARGV: this connection's marker, its admission
 * number ("" when unknown), the TTL. Sets both unless the key holds a connection admitted later:
 * a connection whose write arrives late (it was slow, or already sent away by a newer one) must not
 * take the key back, or, once it leaves, delete it and show the runner offline.
 */
const CLAIM_UNLESS_NEWER = `
local seq = tonumber(ARGV[2])
local held = redis.call("GET", KEYS[2])
if seq and held and tonumber(held) > seq then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[3])
if seq then redis.call("SET", KEYS[2], ARGV[2], "EX", ARGV[3]) else redis.call("DEL", KEYS[2]) end
return 1`;
/** The same, only if the key names this connection or no one: renews it, never takes it from another connection. */
const REFRESH_IF_OWNER_OR_FREE = `
local v = redis.call("GET", KEYS[1])
if v ~= false and v ~= ARGV[1] then return 0 end
${CLAIM_UNLESS_NEWER}`;
const DELETE_IF_OWNER = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1], KEYS[2]) else return 0 end`;

/**
 * Presence of runners in Redis, so gateways can answer 409 without asking a
 * dispatcher. Each dispatcher refreshes the keys of its own sockets; a key
 * expires on its own if its dispatcher dies.
 */
export class RunnerPresence {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: DispatcherContext) {}

  private keysOf(serverId: string): [string, string] {
    return [this.ctx.keys.runnerPresence(serverId), this.ctx.keys.runnerPresenceSeq(serverId)];
  }

  private marker(socketId: string): string {
    return `${this.ctx.config.DISPATCHER_ID}/${socketId}`;
  }

  /** Names this connection, unless a connection admitted later (`seq`) already holds the key. */
  async online(serverId: string, socketId: string, seq: number | undefined): Promise<void> {
    await this.ctx.redis.eval(CLAIM_UNLESS_NEWER, 2, ...this.keysOf(serverId), this.marker(socketId), seq ?? "", RUNNER_PRESENCE_TTL_SECONDS);
  }

  /** Only removes the key if it still names this socket (a newer connection may own it). */
  async offline(serverId: string, socketId: string): Promise<void> {
    await this.ctx.redis.eval(DELETE_IF_OWNER, 2, ...this.keysOf(serverId), this.marker(socketId));
  }

  start(): void {
    const period = (RUNNER_PRESENCE_TTL_SECONDS * 1000) / 3;
    this.timer = setInterval(() => void this.refresh(), period);
    this.timer.unref();
    // Skipped while Redis is unreachable (below); written again as soon as it is back, its keys may have expired.
    this.ctx.redis.on("ready", this.refreshNow);
  }

  private readonly refreshNow = (): void => void this.refresh();

  private async refresh(): Promise<void> {
    // Not queued while Redis is unreachable: ioredis would keep a refresh of every socket in memory every
    // 10 s until it is back, and replay them all.
    if (this.ctx.redis.status !== "ready") return;
    const sockets = [...this.ctx.io.of("/").sockets.values()];
    if (sockets.length === 0) return;
    const pipe = this.ctx.redis.pipeline();
    // A connection this dispatcher has not sent away yet may be an older one than the key names (a newer one
    // admitted elsewhere while the two could not see each other): overwriting would point requests back at it.
    for (const s of sockets) pipe.eval(REFRESH_IF_OWNER_OR_FREE, 2, ...this.keysOf(s.data.serverId), this.marker(s.id), s.data.seq ?? "", RUNNER_PRESENCE_TTL_SECONDS);
    await pipe.exec().catch((err: unknown) => this.ctx.logger.warn("presence refresh failed", { error: String(err) }));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.ctx.redis.off("ready", this.refreshNow);
    const sockets = [...this.ctx.io.of("/").sockets.values()];
    await Promise.all(sockets.map((s) => this.offline(s.data.serverId, s.id).catch(() => undefined)));
  }
}
