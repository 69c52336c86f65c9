import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { runnerResult, scriptedRunner } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * A cancel of an operation that was marked dispatched but whose start never reached a runner is
 * only remembered for the runner; when the start is delivered again it must not run.
 */
describe("cancel of a dispatched operation whose start never reached a runner", () => {
  // Short acks, so an unanswered start times out (and is retried) quickly.
  const suite = useStack({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" }, dispatcher: { RUNNER_ACK_TIMEOUT_MS: "1000" } });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("ends it as cancelled when the start comes round again, and the command never runs", async () => {
    const fx = await createFixture();
    // Takes every start without acknowledging it, and answers no cancel either.
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    const starts: string[] = [];
    const cancels: string[] = [];
    socket.on("operation:start", (op: { operationId: string }) => starts.push(op.operationId));
    socket.on("operation:cancel", ({ operationId }: { operationId: string }) => cancels.push(operationId));
    const marker = path.join(mkdtempSync(path.join(tmpdir(), "rb-cancel-before-start-")), "ran");
    try {
      await stack.waitRunnerConnected(fx.server.id);
      const auth = { Authorization: `Bearer ${fx.token}` };
      const res = await stack.api().post("/api/automation/v1/exec").set(auth).send({ server_id: fx.server.id, command: `touch ${marker}; sleep 300`, timeout_seconds: 600 });
      expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
      const id = res.body.operation_id as string;
      await waitFor(async () => starts.includes(id), 10_000, "start to reach the scripted runner");
      expect((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).dispatchedAt).not.toBeNull();

      const c = await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set(auth).send({ reason: "superseded" });
      expect(c.status).toBe(202);
      expect(c.body).toEqual({ operation_id: id, status: "running", cancel_requested: true });
      expect(await stack.redis.sismember(stack.keys.pendingCancels(fx.server.id), id)).toBe(1);

      socket.disconnect();
      await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))) === 0, 10_000, "scripted runner to be offline");
      await stack.startRunner(fx.runnerToken, fx.server.id);

      const row = await waitFor(async () => {
        const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
        return r.status !== "running" ? r : null;
      }, 20_000, "operation to end");
      // Without the check the start reaches the real runner, which runs it until the cancel kills it.
      expect(existsSync(marker)).toBe(false);
      expect(row).toMatchObject({ status: "cancelled", error: "cancelled on request: superseded", exitCode: null, stdout: "" });
      await waitFor(async () => (await stack.redis.sismember(stack.keys.pendingCancels(fx.server.id), id)) === 0, 5000, "pending cancel cleared");
      // Give a start that slipped through the time to run it.
      await new Promise((r) => setTimeout(r, 2000));
      expect(existsSync(marker)).toBe(false);
      const finished = await testPrisma().auditEvent.findMany({ where: { operationId: id, type: "operation.finished" } });
      expect(finished).toHaveLength(1);
      expect(finished[0]?.data).toMatchObject({ status: "cancelled", error: "cancelled on request: superseded" });
    } finally {
      socket.disconnect();
    }
  });

  it("keeps the runner's result when the start had reached it after all and the command already ran to its end", async () => {
    const fx = await createFixture();
    // Takes the start, runs it (as far as the test is concerned), but its acknowledgement never arrives.
    const first = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    const starts: string[] = [];
    first.on("operation:start", (op: { operationId: string }) => starts.push(op.operationId));
    first.on("operation:cancel", () => undefined);
    let second: ReturnType<typeof scriptedRunner> | undefined;
    // The result re-sends still pending: cleared at the end, or they outlive the test (a buffered emit's ack timer with them).
    const resends: NodeJS.Timeout[] = [];
    try {
      await stack.waitRunnerConnected(fx.server.id);
      const auth = { Authorization: `Bearer ${fx.token}` };
      const res = await stack.api().post("/api/automation/v1/exec").set(auth).send({ server_id: fx.server.id, command: "echo ran", timeout_seconds: 600 });
      const id = res.body.operation_id as string;
      await waitFor(async () => starts.includes(id), 10_000, "start to reach the first runner");
      expect((await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set(auth).send({})).status).toBe(202);
      first.disconnect();
      await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))) === 0, 10_000, "first runner to be offline");

      // The same runner back (as its ledger would answer): the command finished while it was away.
      second = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
      const result = runnerResult(id, { stdout: "ran\n" });
      const cancelAnswers: unknown[] = [];
      const sender = second;
      second.on("operation:cancel", ((req: { operationId: string }, ack: (res: unknown) => void) => {
        const answer = req.operationId === id ? { ok: false, finished: true } : { ok: false };
        cancelAnswers.push(answer);
        ack(answer);
        // Its result is re-sent after, as the runner does — here late enough that the start's next
        // delivery attempt asks about the cancel first, and a cancel recorded on that answer alone would win.
        resends.push(setTimeout(() => void sender.timeout(5000).emitWithAck("operation:result", result).catch(() => undefined), 4000));
      }) as never);
      second.on("operation:start", ((_op: unknown, ack: (res: unknown) => void) => ack({ ok: true, state: "already-finished" })) as never);

      const row = await waitFor(async () => {
        const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
        return r.status !== "running" ? r : null;
      }, 20_000, "operation to end");
      expect(cancelAnswers).toContainEqual({ ok: false, finished: true });
      expect(row).toMatchObject({ status: "completed", exitCode: 0, stdout: "ran\n" });
    } finally {
      for (const t of resends) clearTimeout(t);
      first.disconnect();
      second?.disconnect();
    }
  });
});
