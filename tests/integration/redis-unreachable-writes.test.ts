import { randomUUID } from "node:crypto";
import { createLogger, createRedis } from "@runbridge/common";
import { redisKeys } from "@runbridge/contracts";
import type { DispatcherContext } from "../../apps/dispatcher/src/context";
import { appendOutput } from "../../apps/dispatcher/src/output-log";
import { freePort, waitFor } from "../helpers/processes";

/**
 * While Redis is unreachable, ioredis keeps every command it is given in the process's memory and
 * sends them all once Redis is back. Runners stay connected to their dispatchers meanwhile and keep
 * streaming output: queued, every chunk of every running command (up to 64 KiB each) piled up in the
 * dispatcher for the whole outage. Live output is best effort and is dropped instead. A real ioredis
 * client on a port where nothing listens is in the state a dispatcher's is during an outage.
 */
describe("a dispatcher's live output while Redis is unreachable", () => {
  it("is dropped, not queued in memory until Redis is back", async () => {
    const redis = createRedis(`redis://127.0.0.1:${await freePort()}`);
    const ctx = { redis, keys: redisKeys("unreachable"), logger: createLogger("test", "error") } as unknown as DispatcherContext;
    const queued = () => (redis as unknown as { offlineQueue: { length: number } }).offlineQueue.length;
    try {
      await waitFor(async () => redis.status === "reconnecting", 10_000, "the client to find Redis unreachable");
      const chunk = { operationId: randomUUID(), stream: "stdout" as const, offset: 0, data: "x".repeat(64 * 1024) };
      const appended = Promise.all(Array.from({ length: 50 }, (_, i) => appendOutput(ctx, randomUUID(), { ...chunk, offset: i * chunk.data.length })));
      // Returns at once (queued, it would wait for Redis forever), and holds nothing.
      const settled = await Promise.race([appended.then(() => true), new Promise((r) => setTimeout(() => r(false), 1_000))]);
      expect(settled).toBe(true);
      expect(queued()).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
