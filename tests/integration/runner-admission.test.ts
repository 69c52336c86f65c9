import path from "node:path";
import { createRedis } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { ROOT, waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * Admitting a runner's connection: it is shown connected at once, and of several connections of one
 * runner (on any dispatcher) the newest stays. Real dispatchers; runners speaking the real protocol.
 */
describe("admitting a runner connection", () => {
  const suite = useStack({ dispatchers: 2 });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
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
      await untilConnected(socket);
      await waitFor(async () => (await stack.redis.get(stack.keys.runnerPresence(fx.server.id)))?.endsWith(`/${socket.id}`), 10_000, "presence to name the connection");
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      socket.disconnect();
      await stalled.quit();
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
        await Promise.all(pair.map(untilConnected));
        // Without a rule both stay (each looked before the other joined), or the later lookup sends the newer away.
        const survivor = await waitFor(async () => {
          const live = pair.filter((s) => s.connected);
          return live.length === 1 ? live[0] : null;
        }, 10_000, `round ${round}: one connection to remain`);
        // Kept for a moment: the other side's lookup may still be on its way.
        await new Promise((r) => setTimeout(r, 300));
        expect(pair.filter((s) => s.connected)).toEqual([survivor]);
        expect([...replaced]).toEqual(pair.filter((s) => s !== survivor));
        // A presence write of the connection sent away, however late, neither takes the key nor, as it leaves, frees it.
        await waitFor(async () => (await stack.redis.get(presence))?.endsWith(`/${survivor?.id}`), 2000, `round ${round}: presence to name the survivor`);
      } finally {
        for (const s of pair) s.disconnect();
      }
      await waitFor(async () => (await stack.redis.exists(presence)) === 0, 10_000, "presence to clear between rounds");
    }
    // One replacement a round, audited once, even when both dispatchers found the loser.
    const replacements = () => testPrisma().auditEvent.count({ where: { serverId: fx.server.id, type: "runner.replaced" } });
    await waitFor(async () => (await replacements()) >= 8, 5000, "a runner.replaced event for each round");
    await new Promise((r) => setTimeout(r, 300));
    expect(await replacements()).toBe(8);
  });

  /**
   * A runner connected through one dispatcher reconnects through another while its old connection is
   * still open (`meanwhile` runs in between): the newer connection must stay, and the older one go.
   * Kept the other way round, the runner would have stopped for good.
   */
  async function reconnectKeepsTheNewer(olderPort: number, newerPort: number, meanwhile: () => Promise<void> = async () => undefined): Promise<void> {
    const fx = await createFixture();
    const older = scriptedRunner(olderPort, fx.runnerToken);
    let olderReplaced = false;
    older.on("runner:replaced", () => (olderReplaced = true));
    let newer: ScriptedSocket | undefined;
    let newerReplaced = false;
    try {
      await untilConnected(older);
      await waitFor(async () => (await stack.redis.get(stack.keys.runnerPresence(fx.server.id)))?.endsWith(`/${older.id}`), 10_000, "the older connection to be shown");
      await meanwhile();
      newer = scriptedRunner(newerPort, fx.runnerToken);
      newer.on("runner:replaced", () => (newerReplaced = true));
      await untilConnected(newer);
      await waitFor(async () => !older.connected, 10_000, "the older connection to be sent away");
      expect(olderReplaced).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(newerReplaced).toBe(false);
      expect(newer.connected).toBe(true);
      const named = newer.id;
      await waitFor(async () => (await stack.redis.get(stack.keys.runnerPresence(fx.server.id)))?.endsWith(`/${named}`), 2000, "presence to name the newer connection");
    } finally {
      older.disconnect();
      newer?.disconnect();
    }
  }

  it("keeps the connection admitted last even when its dispatcher's clock is behind the older one's", async () => {
    // A third dispatcher whose clock is two minutes slow: by handshake times, its connection looks older.
    const slowPort = stack.dispatcherPorts.length;
    await stack.startDispatcher({ NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_SKEW_MS: "-120000" });
    await reconnectKeepsTheNewer(stack.dispatcherPorts[0] as number, stack.dispatcherPorts[slowPort] as number);
  });

  it("keeps the connection admitted after Redis lost the admission counter, not an older one numbered before", async () => {
    // Numbered 1 by a counter starting over, the newer one ranked below the older (1001).
    await stack.redis.set(stack.keys.runnerAdmissions, "1000");
    await reconnectKeepsTheNewer(stack.dispatcherPorts[0] as number, stack.dispatcherPorts[1] as number, async () => {
      // Redis restarted without its data (or was flushed): the counter starts over.
      await stack.redis.del(stack.keys.runnerAdmissions);
    });
  });
});
