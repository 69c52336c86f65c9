import { FailureReason, RESULT_DUE_AFTER_TIMEOUT_MS } from "@runbridge/contracts";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture, createOperation, createServer } from "../helpers/factories";
import { sample } from "../helpers/metrics";
import { waitFor } from "../helpers/processes";
import { type ScriptedSocket, runnerResult, scriptedRunner, untilConnected } from "../helpers/scripted-runner";
import { type Fixture, useStack } from "../helpers/suite";

const RESULT_GRACE_SECONDS = 1;
const TIMEOUT_SECONDS = 1;
/** When the sweeper gives up on a connected runner: past the timeout, RESULT_GRACE_SECONDS and every grace a runner may take. */
const GIVE_UP_AFTER_MS = (TIMEOUT_SECONDS + RESULT_GRACE_SECONDS) * 1000 + RESULT_DUE_AFTER_TIMEOUT_MS;

type Query = { operationIds: string[] };
type Ack = (reply: unknown) => void;

/**
 * A connected runner that never answered ledger queries about an overdue operation, or kept answering
 * "running" for it (a start it lost track of, a process it could not end), kept the operation `running`
 * for as long as it stayed connected; 200 such rows filled the sweeper's oldest-first batch, and no
 * other server's overdue operation was looked at again. Now such an operation ends, as failed (result
 * overdue), once it is past its timeout plus every grace a runner may take; and a runner's stuck rows
 * no longer fill the batch ahead of other servers'.
 */
describe("sweeper: a connected runner that never delivers an overdue result", () => {
  const suite = useStack({ dispatcher: { RESULT_GRACE_SECONDS: String(RESULT_GRACE_SECONDS), RUNNER_ACK_TIMEOUT_MS: "1000" } });

  /** An operation handed over and started `ago` ms before now, with a 1 s timeout. */
  const startedAgo = (fx: Fixture, ago: number, serverId = fx.server.id) => {
    const at = new Date(Date.now() - ago);
    return createOperation(fx.tenant.id, serverId, { redisPrefix: suite.stack.prefix, timeoutSeconds: TIMEOUT_SECONDS, createdAt: at, deliverBy: at, dispatchedAt: at, startedAt: at });
  };

  /** A fresh server whose (scripted) runner is connected and answers ledger queries with `answer` (never, when it returns undefined). */
  const withRunner = async (answer: (id: string, ack: Ack) => void, test: (fx: Fixture, runner: ScriptedSocket, asked: string[]) => Promise<void>) => {
    const fx = await createFixture();
    const runner = scriptedRunner(suite.stack.dispatcherPorts[0] as number, fx.runnerToken);
    const asked: string[] = [];
    runner.on("operation:query", ((req: Query, ack: Ack) => {
      for (const id of req.operationIds) {
        asked.push(id);
        answer(id, ack);
      }
    }) as never);
    try {
      await untilConnected(runner);
      await suite.stack.waitRunnerConnected(fx.server.id);
      await test(fx, runner, asked);
    } finally {
      runner.disconnect();
      // Left running by a test: not for the next one's sweeps.
      await testPrisma().operation.updateMany({ where: { serverId: fx.server.id, status: "running" }, data: { status: "cancelled", completedAt: new Date() } });
    }
  };

  const resultOf = (operationId: string) =>
    runnerResult(operationId, { stdout: "late\n", durationMs: 1000, startedAt: new Date(Date.now() - 2 * GIVE_UP_AFTER_MS).toISOString() });

  const metric = async (action: string) => {
    const text = await (await fetch(`http://127.0.0.1:${suite.stack.dispatcherPorts[0]}/metrics`)).text();
    return sample(text, "runbridge_dispatcher_sweeper_actions_total", { action }) ?? 0;
  };

  it("a runner that never answers: operations past every grace end as result overdue (audited), the others wait; a late result is recorded beside the ending", () =>
    withRunner(
      () => undefined,
      async (fx, runner, asked) => {
        const before = await metric("result_overdue");
        const past = [];
        for (let i = 0; i < 3; i++) past.push(await startedAgo(fx, GIVE_UP_AFTER_MS + 60_000 + i * 1000));
        // Overdue, but well within the grace a runner may take (its kill grace may be up to 300 s).
        const within = await startedAgo(fx, 30_000);

        for (const op of past) {
          const ended = await waitUntilEnded(op.id, 15_000, "the operation past every grace to end");
          expect(ended).toMatchObject({ status: "failed", error: FailureReason.ResultOverdueUnanswered, exitCode: null });
          const audit = await testPrisma().auditEvent.findFirst({ where: { operationId: op.id, type: "operation.finished" } });
          expect(audit?.data).toMatchObject({ status: "failed", error: FailureReason.ResultOverdueUnanswered });
        }
        expect(asked.length).toBeGreaterThan(0);
        expect(await metric("result_overdue")).toBe(before + past.length);
        expect((await testPrisma().operation.findUniqueOrThrow({ where: { id: within.id } })).status).toBe("running");

        // The runner's result coming after all: the ending stays (clients may have acted on it), the result is audited beside it.
        const late = past[0]?.id as string;
        expect(await runner.timeout(5000).emitWithAck("operation:result", resultOf(late))).toMatchObject({ stored: true });
        expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: late } })).toMatchObject({ status: "failed", error: FailureReason.ResultOverdueUnanswered });
        const events = await testPrisma().auditEvent.findMany({ where: { operationId: late, type: "operation.result_after_end" } });
        expect(events).toHaveLength(1);
        expect(events[0]?.data).toMatchObject({ status: "completed", recorded_status: "failed", recorded_error: FailureReason.ResultOverdueUnanswered });
      },
    ));

  it("a runner that keeps answering running: past every grace it ends as result overdue; within it, it is not asked about at every sweep", () =>
    withRunner(
      (id, ack) => ack({ [id]: { state: "running" } }),
      async (fx, _runner, asked) => {
        const past = await startedAgo(fx, GIVE_UP_AFTER_MS + 60_000);
        const within = await startedAgo(fx, 30_000);
        const ended = await waitUntilEnded(past.id, 15_000, "the operation past every grace to end");
        expect(ended).toMatchObject({ status: "failed", error: FailureReason.ResultOverdueStillRunning, exitCode: null });
        expect(await testPrisma().auditEvent.count({ where: { operationId: past.id, type: "operation.finished" } })).toBe(1);

        // Sweeps every 500 ms; answered "running", it is left alone a few sweeps (3 s here) at a time.
        await waitFor(async () => asked.includes(within.id) || null, 10_000, "the runner to be asked about the other one");
        const since = asked.length;
        await new Promise((r) => setTimeout(r, 4000));
        expect(asked.slice(since).filter((id) => id === within.id).length).toBeLessThanOrEqual(2);
        expect((await testPrisma().operation.findUniqueOrThrow({ where: { id: within.id } })).status).toBe("running");
      },
    ));

  it("a result that reaches the dispatcher before the sweeper ends the operation wins", () =>
    withRunner(
      () => undefined,
      async (fx, runner) => {
        const op = await startedAgo(fx, GIVE_UP_AFTER_MS + 60_000);
        // Answered "running" only once its result is stored: the sweeper's ending then finds it ended.
        runner.on("operation:query", ((req: Query, ack: Ack) => {
          void runner
            .timeout(5000)
            .emitWithAck("operation:result", resultOf(op.id))
            .then(() => ack(Object.fromEntries(req.operationIds.map((id) => [id, { state: "running" }]))));
        }) as never);
        const ended = await waitUntilEnded(op.id, 15_000);
        expect(ended).toMatchObject({ status: "completed", exitCode: 0, stdout: "late\n", error: null });
        // Give the sweeper's answer time to be acted on: nothing changes, nothing is audited beside it.
        await new Promise((r) => setTimeout(r, 1500));
        expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } })).toMatchObject({ status: "completed", error: null });
        expect(await testPrisma().auditEvent.count({ where: { operationId: op.id, type: { in: ["operation.finished", "operation.result_after_end"] } } })).toBe(1);
      },
    ));

  it("200 overdue rows a runner keeps running do not hold back another server's overdue operation", () =>
    withRunner(
      (id, ack) => ack({ [id]: { state: "running" } }),
      async (fx) => {
        // A whole batch (200, oldest overdue first) of rows its connected runner says are running, within the grace...
        const at = new Date(Date.now() - 60_000);
        await testPrisma().operation.createMany({
          data: Array.from({ length: 200 }, () => ({ tenantId: fx.tenant.id, serverId: fx.server.id, type: "exec", command: "true", timeoutSeconds: TIMEOUT_SECONDS, redisPrefix: suite.stack.prefix, createdAt: at, deliverBy: at, dispatchedAt: at, startedAt: at })),
        });
        // ...and, overdue since after all of them, one of a server whose runner was never seen: ended at once when looked at.
        const { server: gone } = await createServer(fx.tenant.id);
        const other = await startedAgo(fx, 10_000, gone.id);
        const ended = await waitUntilEnded(other.id, 10_000, "the other server's operation to be looked at");
        expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
        expect(await testPrisma().operation.count({ where: { serverId: fx.server.id, status: "running" } })).toBe(200);
      },
    ));
});
