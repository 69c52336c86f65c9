import { hashToken, validRunnerSignature } from "@runbridge/common";
import { FailureReason, RESULT_DUE_AFTER_TIMEOUT_MS } from "@runbridge/contracts";
import { testRedisUrl } from "../helpers/env";
import { testPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { HoldingProxy } from "../helpers/holding-proxy";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected } from "../helpers/scripted-runner";
import { useStack } from "../helpers/suite";

/**
 * A dispatcher asking a runner it does not hold first reads the runner's presence key, on its shared
 * Redis connection, which queues commands while Redis does not answer: the read is bounded, and the
 * request goes on without it (the adapter's lookup, itself bounded). The sweeper's overdue pass waited
 * on that read for as long as Redis did not answer. What it could not tell is "not known", never
 * "runner away": nothing is ended for it.
 *
 * d0 reaches Redis through a HoldingProxy and sweeps (every 500 ms); d1 reaches it directly, holds the
 * runners, and does not sweep in the test's time (so that what is ended or asked is d0's doing).
 */
describe("a dispatcher whose Redis does not answer the read of a runner's presence", () => {
  let proxy: HoldingProxy;
  const suite = useStack(async () => {
    proxy = new HoldingProxy(Number(new URL(testRedisUrl()).port || 6379));
    await proxy.listen();
    return { dispatchers: 0, dispatcher: { RUNNER_ACK_TIMEOUT_MS: "1000", RESULT_GRACE_SECONDS: "1" } };
  });
  beforeAll(async () => {
    await suite.stack.startDispatcher({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    await suite.stack.startDispatcher({ SWEEP_INTERVAL_MS: "600000" });
  });
  afterEach(() => proxy.release());
  // After the stack has stopped: d0's cleanup reaches Redis through the proxy.
  afterAll(() => proxy.close());

  /** A line d0 logged, about `serverId`, after the first `after` characters of its output. */
  const d0Logged = (message: string, serverId: string, after = 0) =>
    (suite.stack.dispatchers[0]?.output ?? "")
      .slice(after)
      .split("\n")
      .find((l) => l.includes(`"message":"${message}"`) && l.includes(serverId));
  const d0Logs = () => (suite.stack.dispatchers[0]?.output ?? "").length;

  /** A server whose runner (scripted, on d1) says its operations are still running, and one of them overdue. */
  const overdueOnD1 = async () => {
    const fx = await createFixture();
    const queries: number[] = [];
    const runner = scriptedRunner(suite.stack.dispatcherPorts[1] as number, fx.runnerToken);
    runner.on("operation:query", ((req: { operationIds: string[] }, ack: (reply: unknown) => void) => {
      if (!validRunnerSignature({ socketId: runner.id ?? "", tokenHash: hashToken(fx.runnerToken) }, "operation:query", req)) return;
      queries.push(Date.now());
      ack(Object.fromEntries(req.operationIds.map((id) => [id, { state: "running" }])));
    }) as never);
    await untilConnected(runner);
    await suite.stack.waitRunnerConnected(fx.server.id);
    // Created once the runner is connected: before, d0 would end it as runner lost.
    const op = await overdueOperation(fx);
    return { fx, op, queries, runner, presenceKey: suite.stack.keys.runnerPresence(fx.server.id) };
  };
  const overdueOperation = (fx: { tenant: { id: string }; server: { id: string } }, agoMs = 120_000) => {
    const longAgo = new Date(Date.now() - agoMs);
    return createOperation(fx.tenant.id, fx.server.id, { redisPrefix: suite.stack.prefix, timeoutSeconds: 1, createdAt: longAgo, dispatchedAt: longAgo, startedAt: longAgo });
  };
  const status = async (id: string) => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status;
  const endIt = (id: string) => testPrisma().operation.update({ where: { id }, data: { status: "completed", completedAt: new Date() } });
  const cleanUp = async (id: string, runner: { disconnect: () => unknown }) => {
    proxy.release();
    runner.disconnect();
    await endIt(id);
  };

  it("asks the runner on another dispatcher all the same, through the adapter, seconds after the read went unanswered", async () => {
    const { fx, op, queries, runner, presenceKey } = await overdueOnD1();
    try {
      // As it is while Redis answers: d0's sweeps reach the runner on d1 (presence, then the relay).
      await waitFor(async () => queries.length > 0, 10_000, "d0's sweeper to query the runner on d1");
      const from = d0Logs();
      // d0's shared connection sends the read of the presence key: from then on it hears nothing back (what it
      // sends still reaches Redis, and the relay's answers come on a connection of their own).
      proxy.hold([presenceKey]);
      await waitFor(async () => proxy.heldRequests > 0, 5000, "d0 to read the runner's presence");
      const held = Date.now();
      // Presence unread (2 s), then the adapter finds the runner on d1, and the relay has d1 ask it.
      await waitFor(async () => queries.some((t) => t > held), 10_000, "d0's sweeper to query the runner on d1 again");
      // About REDIS_WAIT_MS on: not for as long as Redis is silent.
      expect((queries.find((t) => t > held) ?? Infinity) - held).toBeLessThan(5000);
      await waitFor(async () => d0Logged("could not read a runner's presence; looking for it through the adapter", fx.server.id, from), 2000, "d0 to log the unread presence");
      expect(await status(op.id)).toBe("running");
    } finally {
      await cleanUp(op.id, runner);
    }
  }, 40_000);

  it("with every one of its Redis connections silent, gives up on the sweep in seconds and ends nothing", async () => {
    const { fx, op, queries, runner } = await overdueOnD1();
    try {
      await waitFor(async () => queries.length > 0, 10_000, "d0's sweeper to query the runner on d1");
      const from = d0Logs();
      // Every command of d0 from now on (RESP arrays start with "*"): its shared connection, the adapter's, BullMQ's.
      proxy.hold(["*"]);
      const held = Date.now();
      // Presence unread (2 s), then the adapter's lookup, whose count of dispatchers is not answered either (7 s).
      const gaveUp = await waitFor(async () => d0Logged("runner did not answer a ledger query", fx.server.id, from), 20_000, "d0's sweeper to give up on the runner");
      expect(Date.now() - held).toBeLessThan(13_000);
      expect(gaveUp).toContain("no answer within");
      expect(await status(op.id)).toBe("running");
    } finally {
      await cleanUp(op.id, runner);
    }
  }, 40_000);

  it("takes a runner that the adapter does not find, while its presence is unread, for not known rather than away", async () => {
    // No runner anywhere: once its presence is read, the overdue operation ends as runner lost at once.
    const fx = await createFixture();
    const from = d0Logs();
    proxy.hold([suite.stack.keys.runnerPresence(fx.server.id)]);
    // Past the moment a connected runner that stays silent is given up on (RESULT_DUE_AFTER_TIMEOUT_MS): not known
    // to be connected, it is not ended as such (result overdue), but given the lost-runner grace once known away.
    const op = await overdueOperation(fx, RESULT_DUE_AFTER_TIMEOUT_MS + 60_000);
    try {
      // Whichever comes first: left for later (a runner that did not answer), or ended as if known away.
      await waitFor(async () => d0Logged("runner did not answer a ledger query", fx.server.id, from) || (await status(op.id)) !== "running", 12_000, "d0's sweeper to act on the server");
      expect(await status(op.id)).toBe("running");
      expect(d0Logged("runner did not answer a ledger query", fx.server.id, from)).toContain("whether it is connected is not known");
    } finally {
      proxy.release();
    }
    const ended = await waitFor(
      async () => {
        const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } });
        return row.status !== "running" && row;
      },
      15_000,
      "the operation to end once its runner is known away",
    );
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
  }, 40_000);
});
