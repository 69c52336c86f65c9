import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FailureReason } from "@runbridge/contracts";
import { createFixture } from "../helpers/factories";
import { TcpBalancer } from "../helpers/tcp-balancer";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";
import { ExecutionLog, report, waitAllTerminal } from "./helpers";

/** Runners that lose their network, crash, or freeze: nothing runs twice, nothing runs late, nothing stays running. */
describe("chaos: flaky runners", () => {
  const suite = useStack({
    // No grace for a runner that is away (RUNNER_LOST_GRACE_SECONDS): the frozen runner's operation fails as soon as
    // its socket is dropped, within the test's time, as it did before there was one.
    dispatcher: { RUNNER_ACK_TIMEOUT_MS: "1000", RESULT_GRACE_SECONDS: "2", RUNNER_LOST_GRACE_SECONDS: "0" },
    gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: "3" },
  });
  let stack: TestStack;
  let lb: TcpBalancer;

  beforeAll(async () => {
    ({ stack } = suite);
    lb = new TcpBalancer(stack.dispatcherPorts);
    await lb.listen();
  });
  afterAll(() => lb.close());

  const submit = (fx: { token: string; server: { id: string } }, command: string, timeout = 30) =>
    stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command, timeout_seconds: timeout });

  it("a network cut mid-command: the command keeps running and its result arrives when the runner is back", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    const log = new ExecutionLog();
    const res = await submit(fx, log.command("cut-1", 2));
    expect(res.body.status).toBe("running");
    await new Promise((r) => setTimeout(r, 500));
    lb.refusing = true;
    lb.cutAll();
    const cutAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000)); // The command finishes while the runner is cut off.
    lb.refusing = false;
    const results = await waitAllTerminal([res.body.operation_id], 30_000);
    const r = results.get(res.body.operation_id);
    report("network cut mid-command", { operations: 1, cut_seconds: 3, completed: r?.status === "completed" ? 1 : 0, duplicated: Math.max(0, (log.counts().get("cut-1") ?? 0) - 1), recovery_ms: Date.now() - cutAt - 3000 });
    expect(r).toMatchObject({ status: "completed", exitCode: 0, stdout: "ran cut-1\n" });
    expect(log.counts().get("cut-1")).toBe(1);
  });

  it("kill -9 and restart of the runner mid-command: the operation ends, and never runs again", async () => {
    const fx = await createFixture();
    const stateDir = mkdtempSync(path.join(tmpdir(), "rb-state-"));
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir });
    const log = new ExecutionLog();
    const res = await submit(fx, log.command("crash-1", 2));
    await new Promise((r) => setTimeout(r, 500));
    runner.child.kill("SIGKILL");
    await runner.exited;
    const restartedAt = Date.now();
    await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir });
    const results = await waitAllTerminal([res.body.operation_id], 30_000);
    await new Promise((r) => setTimeout(r, 2500)); // Let the orphaned command finish on its own.
    const r = results.get(res.body.operation_id);
    report("kill -9 and restart a runner mid-command", { operations: 1, kills: 1, status: r?.status, executions: log.counts().get("crash-1") ?? 0, recovery_ms: Date.now() - restartedAt - 2500 });
    // Its pipes died with the old runner: the outcome is unknown, and said so.
    expect(r).toMatchObject({ status: "failed", error: expect.stringMatching(/runner restarted while the operation was running/) });
    expect(log.counts().get("crash-1")).toBe(1);
  });

  it("a frozen runner past the delivery deadline: the operation fails as runner offline and never runs late", async () => {
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_CLOCK_SKEW_SECONDS: "0" } });
    const log = new ExecutionLog();
    runner.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    try {
      const res = await submit(fx, log.command("late-1"), 1);
      expect(res.status).toBe(200); // Presence still there: accepted, then never confirmed.
      const results = await waitAllTerminal([res.body.operation_id], 60_000);
      const r = results.get(res.body.operation_id);
      expect(r).toMatchObject({ status: "failed", error: FailureReason.RunnerUnconfirmed });
      report("frozen runner past the delivery deadline", { operations: 1, status: r?.status, failed_after_ms: Date.now() - frozenAt });
    } finally {
      runner.child.kill("SIGCONT");
    }
    // Thawed, it may read the start event still buffered in its socket: it must refuse it.
    await stack.waitRunnerConnected(fx.server.id, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(log.counts().get("late-1") ?? 0).toBe(0);
  });
});
