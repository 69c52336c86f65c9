import type { Redis } from "ioredis";
import type { RedisKeys } from "@runbridge/contracts";

/** Whether a server's runner is connected to some dispatcher (presence keys with TTL, kept by dispatchers). */
export class Presence {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  async isConnected(serverId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.runnerPresence(serverId))) === 1;
  }

  async connectedSet(serverIds: string[]): Promise<Set<string>> {
    if (serverIds.length === 0) return new Set();
    const values = await this.redis.mget(serverIds.map((id) => this.keys.runnerPresence(id)));
    return new Set(serverIds.filter((_, i) => values[i] != null));
  }
}
