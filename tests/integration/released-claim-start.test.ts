import { FailureReason } from "@runbridge/contracts";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { runnerResult, scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** What a draining runner answers a start: not started, offer it again later. */
const ASK_LATER = { ok: false, error: "runner is shutting down", retryable: true };
const ACK_TIMEOUT_MS = 2500;
const DELIVERY_TIMEOUT_SECONDS = 4;

/**
 * A delivery whose start the runner refused for now takes its dispatched mark back (the operation waits for a runner
 * again). A start sent earlier — whose answer never came — may still be on its way, and run after that release: the
 * operation must not then be ended as never run (a cancel before dispatch, its delivery deadline) while its command runs.
 */
describe("a start that reaches the runner after a refused claim was released", () => {
  const suite = useStack({
    gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) },
    dispatcher: { RUNNER_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS) },
  });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });
  const sockets: ScriptedSocket[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.disconnect();
  });

  it("store: its runner's report of the start marks it handed over again, and no 'never handed over' ending takes it", async () => {
    const fx = await createFixture();
    const ops = stack.gateway.operations;
    const { id } = await createOperation(fx.tenant.id, fx.server.id);

    // Claimed, its start sent; the claim released (as after a refusal), then the runner reports a start sent before.
    const claimed = await ops.claimForDispatch(id);
    expect(await ops.releaseDispatch(id, claimed!.dispatchedAt!)).toBe(true);
    await ops.markStarted(id, fx.server.id, new Date(Date.now() - 50));

    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "running", startedAt: expect.any(Date), dispatchedAt: expect.any(Date) });
    expect(row.startedAt!.getTime()).toBeGreaterThanOrEqual(row.dispatchedAt!.getTime());
    expect(await ops.releaseDispatch(id, row.dispatchedAt!)).toBe(false);
    expect(await ops.finish(fx.server.id, { operationId: id, status: "cancelled", error: "cancelled on request" }, "undispatched")).toBeNull();
    await testPrisma().operation.update({ where: { id }, data: { deliverBy: new Date(Date.now() - 60_000) } });
    expect(await ops.finish(fx.server.id, { operationId: id, status: "failed", error: "not delivered" }, "past-deadline")).toBeNull();
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "running" });
  });

  it("store: a claim says whether it set the mark or found an earlier claim's (whose start may be on its way)", async () => {
    const fx = await createFixture();
    const ops = stack.gateway.operations;
    const { id } = await createOperation(fx.tenant.id, fx.server.id);
    const first = await ops.claimForDispatch(id);
    expect(first).toMatchObject({ claimedHere: true, dispatchedAt: expect.any(Date) });
    expect(await ops.claimForDispatch(id)).toMatchObject({ claimedHere: false, dispatchedAt: first!.dispatchedAt });
    expect(await ops.markDispatched(id)).toEqual({ at: first!.dispatchedAt, claimedHere: false });
    expect(await ops.releaseDispatch(id, first!.dispatchedAt!)).toBe(true);
    const again = await ops.markDispatched(id);
    expect(again).toEqual({ at: expect.any(Date), claimedHere: true });
    expect(again!.at.getTime()).toBeGreaterThanOrEqual(first!.dispatchedAt!.getTime());
  });

  it("store: of claims made at once (within the column's millisecond), exactly one says it set the mark", async () => {
    const fx = await createFixture();
    const ops = stack.gateway.operations;
    for (let round = 0; round < 5; round++) {
      const { id } = await createOperation(fx.tenant.id, fx.server.id);
      const claims = await Promise.all([
        ...Array.from({ length: 4 }, () => ops.claimForDispatch(id).then((c) => c?.claimedHere)),
        ...Array.from({ length: 4 }, () => ops.markDispatched(id).then((c) => c?.claimedHere)),
      ]);
      expect(claims.filter((c) => c === true)).toHaveLength(1);
      expect(claims.filter((c) => c === false)).toHaveLength(claims.length - 1);
    }
  });

  it("store: an operation with a start reported is not ended as never handed over, even left unmarked", async () => {
    const fx = await createFixture();
    const ops = stack.gateway.operations;
    // As the release left it before a start report marked it again (rows of an earlier release).
    const { id } = await createOperation(fx.tenant.id, fx.server.id, { startedAt: new Date(), dispatchedAt: null, deliverBy: new Date(Date.now() - 60_000) });
    expect(await ops.finish(fx.server.id, { operationId: id, status: "cancelled", error: "cancelled on request" }, "undispatched")).toBeNull();
    expect(await ops.finish(fx.server.id, { operationId: id, status: "failed", error: "not delivered" }, "past-deadline")).toBeNull();
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "running" });
  });

  it("sweeper: such an operation still ends once overdue, through the overdue pass (its runner never came back)", async () => {
    const fx = await createFixture();
    const longAgo = new Date(Date.now() - 120_000);
    const { id } = await createOperation(fx.tenant.id, fx.server.id, { redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: longAgo, startedAt: longAgo, dispatchedAt: null, deliverBy: longAgo });
    // Never seen, so no lost-runner grace: ended as lost at the next sweep, rather than left running for good.
    expect(await waitUntilEnded(id, 10_000)).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
  });

  it("dispatcher: an unanswered start, then a refusal of the next: the command's result is its outcome, not 'never delivered'", async () => {
    const fx = await createFixture();
    const runner = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    sockets.push(runner);
    const starts: string[] = [];
    let reportStart: (() => void) | null = null;
    runner.on("operation:start", (op: { operationId: string; notAfter: string }, ack: (reply: unknown) => void) => {
      starts.push(op.operationId);
      // The first start is held (the runner is measuring its clock, say) past the dispatcher's ack time-out.
      if (starts.length === 1) return;
      if (starts.length > 2) return ack({ ok: true, state: "already-started" });
      // The retry is refused for now, once the delivery deadline has passed; then the held start runs after all,
      // and its report and result follow a little later than the next attempt (a second after the refusal).
      setTimeout(
        () => {
          ack(ASK_LATER);
          reportStart = () => {
            const startedAt = new Date().toISOString();
            runner.emit("operation:started", { operationId: op.operationId, startedAt });
            const result = runnerResult(op.operationId, { stdout: "ran\n", durationMs: 100, startedAt });
            setTimeout(() => void runner.timeout(5000).emitWithAck("operation:result", result).catch(() => undefined), 300);
          };
          setTimeout(() => reportStart?.(), 2000);
        },
        Math.max(0, Date.parse(op.notAfter) + 300 - Date.now()),
      );
    });
    await stack.waitRunnerConnected(fx.server.id);

    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo ran", timeout_seconds: 300 });
    expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
    const id = res.body.operation_id as string;
    await waitFor(async () => reportStart !== null, 15_000, "the second start to be refused");

    const row = await waitUntilEnded(id, 15_000);
    // Before the fix: the refusal released the first start's mark, and the next attempt ended it as the runner
    // asking for it later until its deadline — never started — while its command ran; its result was dropped.
    expect(row).toMatchObject({ status: "completed", exitCode: 0, stdout: "ran\n", dispatchedAt: expect.any(Date), startedAt: expect.any(Date) });
    expect(await testPrisma().auditEvent.count({ where: { operationId: id, type: "operation.finished" } })).toBe(1);
  }, 40_000);
});
