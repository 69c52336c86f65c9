import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FailureReason } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** What a draining runner answers a start: not started, offer it again later. */
const ASK_LATER = { ok: false, error: "runner is shutting down", retryable: true };
const DELIVERY_TIMEOUT_SECONDS = 8;

type Fixture = Awaited<ReturnType<typeof createFixture>>;

/**
 * A runner that refuses a start retryably (draining for a restart) did not start it: the operation
 * is waiting for a runner again, with its delivery deadline and the gateway's direct cancel, not
 * treated as possibly running until its timeout.
 */
describe("a start the runner refused for now", () => {
  const suite = useStack({ gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) } });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  /** Scripted runners still connected once a test ends (one whose test failed before it left). */
  const sockets: ScriptedSocket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.disconnect();
  });

  /**
   * Submits `command` while the server's runner is a scripted one that answers its first
   * `refusals` starts "later" and then goes away, and returns once it is gone, with the times of
   * its refusals.
   */
  async function submitToRefusingRunner(fx: Fixture, command: string, refusals: number): Promise<{ id: string; refusedAt: number[] }> {
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    sockets.push(socket);
    const refusedAt: number[] = [];
    let leave: () => void = () => undefined;
    const gone = new Promise<void>((resolve) => (leave = resolve));
    socket.on("operation:start", (_op: unknown, ack: (reply: unknown) => void) => {
      if (refusedAt.length >= refusals) return;
      refusedAt.push(Date.now());
      ack(ASK_LATER);
      if (refusedAt.length === refusals) {
        // Leaves once its answer is on its way, as a runner exiting after its drain does.
        setTimeout(() => {
          socket.disconnect();
          leave();
        }, 200);
      }
    });
    await stack.waitRunnerConnected(fx.server.id);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command, timeout_seconds: 300 });
    expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
    await gone;
    await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))) === 0, 10_000, "scripted runner to be offline");
    return { id: res.body.operation_id as string, refusedAt };
  }

  const ended = (id: string, timeoutMs: number, what: string) =>
    waitFor(
      async () => {
        const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
        return r.status !== "running" ? r : null;
      },
      timeoutMs,
      what,
    );

  it("fails as runner offline at its delivery deadline when that runner never comes back", async () => {
    const fx = await createFixture();
    const { id, refusedAt } = await submitToRefusingRunner(fx, "true", 1);
    const { deliverBy } = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    // Left marked as dispatched it would wait for timeout_seconds (300) plus the result grace.
    const row = await ended(id, Math.max(0, deliverBy.getTime() - Date.now()) + 5_000, "operation to fail at its delivery deadline");
    expect(row).toMatchObject({ status: "failed", error: FailureReason.RunnerOffline, dispatchedAt: null, startedAt: null, exitCode: null });
    expect(row.completedAt!.getTime()).toBeGreaterThanOrEqual(deliverBy.getTime());
    expect(refusedAt).toHaveLength(1);
  });

  it("a cancel after the refusal ends it at once, and a runner that accepts starts later never gets it", async () => {
    const fx = await createFixture();
    const marker = path.join(mkdtempSync(path.join(tmpdir(), "rb-refused-cancel-")), "ran");
    const { id } = await submitToRefusingRunner(fx, `touch ${marker}`, 1);

    const c = await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${fx.token}`).send({ reason: "not now" });
    expect(c.status).toBe(202);
    // Not `running` with the cancel only passed on to a runner that said it did not start it.
    expect(c.body).toEqual({ operation_id: id, status: "cancelled", cancel_requested: true });
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "cancelled", error: "cancelled on request: not now", dispatchedAt: null });

    const real = await stack.startRunner(fx.runnerToken, fx.server.id);
    // Long enough for a few delivery attempts.
    await new Promise((r) => setTimeout(r, 3000));
    expect(existsSync(marker)).toBe(false);
    expect(real.output).not.toContain(id);
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "cancelled", dispatchedAt: null, startedAt: null });
    expect(await testPrisma().auditEvent.count({ where: { operationId: id, type: "operation.finished" } })).toBe(1);
  });

  it("refused twice, then taken by the next runner process: runs once, marked dispatched by the start it accepted", async () => {
    const fx = await createFixture();
    const out = path.join(mkdtempSync(path.join(tmpdir(), "rb-refused-run-")), "runs");
    const { id, refusedAt } = await submitToRefusingRunner(fx, `echo ran >> ${out}; echo done`, 2);
    await stack.startRunner(fx.runnerToken, fx.server.id);

    const row = await ended(id, 15_000, "operation to end");
    expect(row).toMatchObject({ status: "completed", exitCode: 0, stdout: "done\n" });
    // The refused attempts did not count as handing it over: the mark is the accepted start's.
    expect(refusedAt).toHaveLength(2);
    expect(row.dispatchedAt!.getTime()).toBeGreaterThan(refusedAt[1]!);
    // Give a second start the time to run.
    await new Promise((r) => setTimeout(r, 2000));
    expect(readFileSync(out, "utf8")).toBe("ran\n");
  });
});
