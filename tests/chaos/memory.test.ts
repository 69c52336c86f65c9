import { createAutomationKey, createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** Redis holds no per-operation state once operations finish: memory does not grow with the number run. */
describe("bounded Redis memory", () => {
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("leaves no job, and only expiring live-log streams, after 300 operations", async () => {
    const fx = await createFixture();
    const { token } = await createAutomationKey(fx.tenant.id, { rateLimit: 1000 });
    await stack.startRunner(fx.runnerToken, fx.server.id);
    const keyCount = async () => (await stack.redis.keys(`${stack.prefix}:*`)).length;
    const run = (n: number) =>
      Promise.all(Array.from({ length: n }, () => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`).send({ server_id: fx.server.id, command: "echo x" })));
    for (let i = 0; i < 3; i++) {
      const answers = await run(100);
      expect(answers.map((a) => a.body.status)).toEqual(Array(100).fill("completed"));
    }
    // Delivery jobs are removed on completion: no per-operation job hashes remain (a job may still be
    // recording its completion just after its operation's answer was sent).
    const jobKeys = async () => (await stack.redis.keys(`${stack.keys.bull}:operations:*`)).filter((k: string) => /:[0-9a-f-]{36}$/.test(k));
    await waitFor(async () => (await jobKeys()).length === 0, 10_000, "delivery jobs to be removed").catch(() => undefined);
    expect(await jobKeys()).toEqual([]);
    // Live-log streams of finished operations all carry a TTL (an hour at most).
    const streams = await stack.redis.keys(`${stack.prefix}:oplog:*`);
    for (const k of streams) {
      const ttl = await stack.redis.ttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(3600);
    }
    // Everything else is a fixed set of queue and presence keys.
    expect((await keyCount()) - streams.length).toBeLessThan(20);
  });
});
