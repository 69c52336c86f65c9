import { FailureReason } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { type ScriptedSocket, runnerResult, scriptedRunner, untilConnected } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/**
 * A runner away longer than an operation's time-out plus RESULT_GRACE_SECONDS (a token rotation
 * mid-command, a long partition) finds its operation ended by the sweeper as runner lost when it
 * comes back with the result. The ending stays — clients may have acted on it — and the result is
 * recorded beside it, once, as an operation.result_after_end audit event.
 */
describe("a runner's result that arrives after its operation was ended without it", () => {
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  const resultOf = (operationId: string, startedAt: Date) => runnerResult(operationId, { stdout: "deployed\n", durationMs: 1200, startedAt: startedAt.toISOString() });

  /** A fresh server with a connected scripted runner, and the time its operations started (five minutes ago). */
  const withRunner = async (test: (fx: Fixture, runner: ScriptedSocket, startedAt: Date) => Promise<void>) => {
    const fx = await createFixture();
    const runner = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    try {
      await untilConnected(runner);
      await test(fx, runner, new Date(Date.now() - 300_000));
    } finally {
      runner.disconnect();
    }
  };

  it("keeps the operation's ending and records the result once as operation.result_after_end; a plain duplicate records nothing", () =>
    withRunner(async (fx, runner, startedAt) => {
      const ended = { status: "failed", completedAt: new Date(), dispatchedAt: startedAt, startedAt, redisPrefix: stack.prefix };
      const lost = await createOperation(fx.tenant.id, fx.server.id, { ...ended, error: FailureReason.RunnerLost });
      for (let i = 0; i < 2; i++) {
        expect(await runner.timeout(5000).emitWithAck("operation:result", resultOf(lost.id, startedAt))).toMatchObject({ stored: true });
      }
      expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: lost.id } })).toMatchObject({ status: "failed", error: FailureReason.RunnerLost, exitCode: null });
      const events = await testPrisma().auditEvent.findMany({ where: { operationId: lost.id, type: "operation.result_after_end" } });
      expect(events).toHaveLength(1);
      expect(events[0]?.data).toEqual({
        status: "completed",
        exit_code: 0,
        duration_ms: 1200,
        started_at: startedAt.toISOString(),
        stdout_bytes: 9,
        stderr_bytes: 0,
        recorded_status: "failed",
        recorded_error: FailureReason.RunnerLost,
      });

      // Ended otherwise (here by its runner's own result, whose acknowledgement was lost): a re-sent result adds nothing.
      const done = await createOperation(fx.tenant.id, fx.server.id, { ...ended, status: "completed", exitCode: 0 });
      expect(await runner.timeout(5000).emitWithAck("operation:result", resultOf(done.id, startedAt))).toMatchObject({ stored: true });
      expect(await testPrisma().auditEvent.count({ where: { operationId: done.id, type: "operation.result_after_end" } })).toBe(0);
    }));

  it("records it once when two deliveries of the result arrive at the same moment", () =>
    withRunner(async (fx, runner, startedAt) => {
      const lost = await createOperation(fx.tenant.id, fx.server.id, { status: "failed", error: FailureReason.RunnerLost, completedAt: new Date(), dispatchedAt: startedAt, startedAt, redisPrefix: stack.prefix });
      // Each insert of its audit event takes half a second once it has read whether there is one: two
      // deliveries at the same moment are then both between that read and their commit.
      const fn = `rb_slow_${lost.id.slice(0, 8)}`;
      await testPrisma().$executeRawUnsafe(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$`);
      await testPrisma().$executeRawUnsafe(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.operation_id = '${lost.id}') EXECUTE FUNCTION ${fn}()`);
      const acks = [0, 1].map(() => runner.timeout(15_000).emitWithAck("operation:result", resultOf(lost.id, startedAt)));
      try {
        await Promise.all(acks);
      } finally {
        await testPrisma().$executeRawUnsafe(`DROP FUNCTION ${fn}() CASCADE`);
      }
      expect(await Promise.all(acks)).toMatchObject([{ stored: true }, { stored: true }]);
      expect(await testPrisma().auditEvent.count({ where: { operationId: lost.id, type: "operation.result_after_end" } })).toBe(1);
    }));
});

