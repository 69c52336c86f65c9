import { createRedis } from "@runbridge/common";
import { createFixture } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * Two dispatchers share the queue; the runner is connected to the second, so about half the
 * deliveries are made by the first, which reaches the runner through the second. A third party
 * subscribed to the socket.io adapter's request channel that never answers stands in for a stalled
 * dispatcher (a frozen process keeps its Redis subscriptions): the adapter's lookups wait 5 s for it
 * and fail. Deliveries must not depend on it: the first relays through the dispatcher the runner's
 * presence key names, and every exec completes in the time of an exec.
 */
describe("delivery to a runner held by another dispatcher, with a third one stalled", () => {
  let stalled: ReturnType<typeof createRedis>;
  // Declared before useStack, so it runs first: the stalled subscriber goes before the stack stops.
  afterAll(() => stalled?.disconnect());
  const suite = useStack({ dispatchers: 2 });
  let stack: TestStack;

  beforeAll(async () => {
    ({ stack } = suite);
    stalled = createRedis(stack.redisUrl);
    await stalled.subscribe(`${stack.keys.socketAdapter}-request#/#`);
  });

  const relayed = async (port: number) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith('runbridge_dispatcher_relay_requests_total{outcome="delivered",'));
    if (!line) throw new Error("no runbridge_dispatcher_relay_requests_total series");
    return Number(line.split(" ").pop());
  };

  it("completes every exec promptly, about half of them relayed, their env values never readable on the relay's channels", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 1 });
    // Whoever can subscribe to Redis channels sees every relayed message.
    const seen: string[] = [];
    const spy = createRedis(stack.redisUrl);
    spy.on("pmessage", (_pattern: string, _channel: string, message: string) => seen.push(message));
    await spy.psubscribe(stack.keys.relayRequests("*"), stack.keys.relayReplies("*"));
    const canary = `relay-canary-${Date.now()}`;
    const before = await relayed(stack.dispatcherPorts[0] as number);
    for (let i = 0; i < 16; i++) {
      const started = Date.now();
      const res = await stack
        .api()
        .post("/api/automation/v1/exec")
        .set("Authorization", `Bearer ${fx.token}`)
        .send({ server_id: fx.server.id, command: `echo ${i}`, env: { RELAY_CANARY: canary } });
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: `${i}\n` });
      // Through the adapter, a delivery by the first dispatcher would wait 5 s for the stalled one, then be retried.
      expect(Date.now() - started).toBeLessThan(4000);
    }
    // Some of the sixteen were taken by the first dispatcher (all sixteen by the second: 1 in 65,536).
    expect(await relayed(stack.dispatcherPorts[0] as number)).toBeGreaterThan(before);
    spy.disconnect();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((m) => m.includes(canary))).toEqual([]);
  });
});
