import { createRedis } from "@runbridge/common";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import { TestStack } from "../helpers/stack";

const connected = (socket: ScriptedSocket) =>
  new Promise<void>((resolve, reject) => {
    socket.on("connect", () => resolve());
    socket.on("connect_error", ((err: Error) => reject(err)) as never);
  });

/**
 * Admitting a runner's connection: it is shown connected at once, and of several connections of one
 * runner (on any dispatcher) the newest stays. Real dispatchers; runners speaking the real protocol.
 */
describe("admitting a runner connection", () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.start({ dispatchers: 2 });
  });
  afterAll(async () => {
    await stack?.stop();
    await closeTestPrisma();
  });

  it("shows the runner connected at once while another dispatcher is stalled (subscribed, never answering)", async () => {
    const fx = await createFixture();
    // A frozen dispatcher keeps its Redis subscriptions: the adapter's lookup of the runner's other
    // connections waits its whole 5 s timeout for it, and admission used to wait with it.
    const stalled = createRedis(stack.redisUrl);
    await stalled.subscribe(`${stack.keys.socketAdapter}-request#/#`);
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    try {
      const started = Date.now();
      await connected(socket);
      await waitFor(async () => (await stack.redis.get(stack.keys.runnerPresence(fx.server.id)))?.endsWith(`/${socket.id}`), 10_000, "presence to name the connection");
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      socket.disconnect();
      stalled.disconnect();
    }
  });

  it("of two connections made at the same moment on two dispatchers, keeps exactly one, and presence names it", async () => {
    const fx = await createFixture();
    const presence = stack.keys.runnerPresence(fx.server.id);
    for (let round = 0; round < 8; round++) {
      const pair = [0, 1].map((d) => scriptedRunner(stack.dispatcherPorts[d] as number, fx.runnerToken));
      const replaced = new Set<ScriptedSocket>();
      for (const s of pair) s.on("runner:replaced", () => replaced.add(s));
      try {
        await Promise.all(pair.map(connected));
        // Without a rule both stay (each looked before the other joined), or the later lookup sends the newer away.
        const survivor = await waitFor(async () => {
          const live = pair.filter((s) => s.connected);
          return live.length === 1 ? live[0] : null;
        }, 10_000, `round ${round}: one connection to remain`);
        // Kept for a moment: the other side's lookup may still be on its way.
        await new Promise((r) => setTimeout(r, 300));
        expect(pair.filter((s) => s.connected)).toEqual([survivor]);
        expect([...replaced]).toEqual(pair.filter((s) => s !== survivor));
        // A connection that learned of a newer one after writing presence hands the key over; one sent away while
        // still writing it can leave it free until the survivor's dispatcher renews it (a third of its TTL).
        await waitFor(async () => (await stack.redis.get(presence))?.endsWith(`/${survivor?.id}`), 12_000, `round ${round}: presence to name the survivor`);
      } finally {
        for (const s of pair) s.disconnect();
      }
      await waitFor(async () => (await stack.redis.exists(presence)) === 0, 10_000, "presence to clear between rounds");
    }
  });
});
