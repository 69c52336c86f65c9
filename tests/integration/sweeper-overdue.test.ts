import { FailureReason } from "@runbridge/contracts";
import { closeTestPrisma, testPrisma, waitUntilEnded } from "../helpers/db";
import { createOperation, createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner } from "../helpers/scripted-runner";
import { useStackWithRunner } from "../helpers/suite";

/**
 * A runner that is connected but never answers ledger queries, holding many
 * operations whose result is overdue, used to make every sweep wait out one
 * ack timeout per operation — minutes — before the sweep's next pass could
 * re-enqueue an operation whose job was lost.
 */
describe("sweeper: overdue operations on a runner that does not answer", () => {
  // No grace for a runner that is away: what is tested here is the sweep, not how long it waits for a runner to come
  // back (sweeper-runner-grace.test.ts).
  const suite = useStackWithRunner({ dispatcher: { REQUEUE_AFTER_SECONDS: "1", RESULT_GRACE_SECONDS: "1", RUNNER_ACK_TIMEOUT_MS: "5000", RUNNER_LOST_GRACE_SECONDS: "0" } });

  afterAll(closeTestPrisma);

  it("are asked about in one batch, and do not hold back a lost job's re-enqueue", async () => {
    const { stack, fx } = suite;
    const { server: silentServer, runnerToken } = await createServer(fx.tenant.id);
    const silent = scriptedRunner(stack.dispatcherPorts[0] as number, runnerToken);
    const queries: string[][] = [];
    const overdue: { id: string }[] = [];
    // Receives the query and never acknowledges it.
    silent.on("operation:query", ((req: { operationIds: string[] }) => queries.push(req.operationIds)) as (...args: never[]) => void);
    try {
      await stack.waitRunnerConnected(silentServer.id);
      const longAgo = new Date(Date.now() - 120_000);
      for (let i = 0; i < 40; i++) {
        overdue.push(
          await createOperation(fx.tenant.id, silentServer.id, {
            redisPrefix: stack.prefix,
            timeoutSeconds: 1,
            createdAt: longAgo,
            // Handed over just now: not overdue yet.
            dispatchedAt: new Date(),
          }),
        );
      }
      // All overdue at once, so that the first sweep to see them sees them all.
      await testPrisma().operation.updateMany({ where: { id: { in: overdue.map((op) => op.id) } }, data: { dispatchedAt: longAgo, startedAt: longAgo } });
      // The sweeper is now waiting on the silent runner.
      await waitFor(async () => queries.length > 0, 15_000, "the sweeper to query the silent runner");

      const lost = await createOperation(fx.tenant.id, fx.server.id, {
        command: "echo recovered",
        redisPrefix: stack.prefix,
        createdAt: new Date(Date.now() - 5_000),
      });
      const done = await waitUntilEnded(lost.id, 20_000, "the lost job to be re-enqueued and run");
      expect(done).toMatchObject({ status: "completed", exitCode: 0, stdout: "recovered\n" });
      // Still unresolved: the silent runner may yet answer.
      const stillRunning = await testPrisma().operation.count({ where: { id: { in: overdue.map((op) => op.id) }, status: "running" } });
      expect(stillRunning).toBe(overdue.length);
      // Asked about the oldest first, one operation per query (a reply carries whole results), and
      // then left alone once it did not answer, instead of being asked about the other 39 in turn.
      expect(queries[0]).toHaveLength(1);
      expect(overdue.map((op) => op.id)).toContain(queries[0]?.[0]);
      expect(queries.length).toBeLessThanOrEqual(2);
    } finally {
      silent.disconnect();
    }
    // Once that runner is gone, the next look at them (after leaving it alone a while) ends them all.
    const ids = overdue.map((op) => op.id);
    await waitFor(async () => (await testPrisma().operation.count({ where: { id: { in: ids }, status: "failed" } })) === ids.length, 40_000, "the overdue operations to fail");
    const reasons = await testPrisma().operation.findMany({ where: { id: { in: ids } }, distinct: ["error"], select: { error: true } });
    expect(reasons).toEqual([{ error: expect.stringMatching(/^runner lost: /) }]);
  });

  it("counts a started operation's time-out from no earlier than its handover, whatever the runner's clock stamped", async () => {
    const { stack, fx } = suite;
    // No runner connected: an operation overdue now would be ended as runner lost at once.
    const { server: away } = await createServer(fx.tenant.id);
    const now = new Date();
    const base = { redisPrefix: stack.prefix, timeoutSeconds: 30, dispatchedAt: now };
    // Started just now, stamped five minutes ago by a runner whose clock is behind.
    const behind = await createOperation(fx.tenant.id, away.id, { ...base, startedAt: new Date(now.getTime() - 300_000) });
    // The control: handed over long ago, so overdue by any reading.
    const longAgo = new Date(now.getTime() - 300_000);
    const overdue = await createOperation(fx.tenant.id, away.id, { ...base, dispatchedAt: longAgo, startedAt: longAgo });
    const ended = await waitUntilEnded(overdue.id, 20_000, "the overdue control to end");
    expect(ended.error).toMatch(/^runner lost: /);
    expect((await testPrisma().operation.findUniqueOrThrow({ where: { id: behind.id } })).status).toBe("running");
    await testPrisma().operation.update({ where: { id: behind.id }, data: { status: "cancelled", completedAt: new Date() } });
  });

  it("ends a reboot whose cloud provider call was claimed and never answered as outcome unknown, not as runner offline or result lost", async () => {
    const { stack, fx } = suite;
    const longAgo = new Date(Date.now() - 120_000);
    // Claimed for a provider call (dispatched, no reboot_path recorded); its dispatcher died, its job went with Redis.
    const claimed = await createOperation(fx.tenant.id, fx.server.id, { type: "reboot", command: null, params: {}, redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: longAgo, deliverBy: longAgo, dispatchedAt: longAgo });
    // A reboot that went the runner's way (its path recorded): asked about as any other, and its runner knows nothing.
    const viaRunner = await createOperation(fx.tenant.id, fx.server.id, { type: "reboot", command: null, params: { reboot_path: "runner" }, redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: longAgo, deliverBy: longAgo, dispatchedAt: longAgo });
    expect(await waitUntilEnded(claimed.id, 20_000)).toMatchObject({ status: "failed", error: FailureReason.RebootOutcomeUnknown });
    expect(await waitUntilEnded(viaRunner.id, 20_000)).toMatchObject({ status: "failed", error: FailureReason.ResultLost });
  });
});
