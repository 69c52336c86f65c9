import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { useStackBehindBalancer } from "../helpers/balanced-stack";
import { createFixture } from "../helpers/factories";
import { type Proc, waitFor } from "../helpers/processes";
import { ExecutionLog, report, waitAllTerminal } from "./helpers";

type Fx = Awaited<ReturnType<typeof createFixture>>;

/** A command that runs until `go` exists: the test decides when it finishes. */
function gatedCommand(go: string, token: string): string {
  return `while [ ! -e ${go} ]; do sleep 0.05; done; echo ran ${token}`;
}

/** The runner's start log lists every operation it has begun (made durable before it runs). */
async function waitStarted(stateDir: string, ids: string[]): Promise<void> {
  const log = path.join(stateDir, "ledger", "started.log");
  await waitFor(async () => existsSync(log) && ids.every((id) => readFileSync(log, "utf8").includes(id)), 15_000, "the runner to start the operations");
}

async function exited(proc: Proc, timeoutMs: number): Promise<void> {
  await Promise.race([proc.exited, new Promise((_, reject) => setTimeout(() => reject(new Error(`runner still running after ${timeoutMs} ms:\n${proc.output}`)), timeoutMs).unref())]);
}

/** A runner stopped on purpose (SIGTERM, as systemd does): nothing it ran or was offered is lost or cut off. */
describe("chaos: runner graceful stop", () => {
  const suite = useStackBehindBalancer({ gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: "60" } });

  const submit = (fx: Fx, command: string) =>
    suite.stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command, timeout_seconds: 60 });

  it("a result still being written when SIGTERM arrives is on disk before the runner exits", async () => {
    const { stack, lb } = suite;
    const fx = await createFixture();
    const stateDir = mkdtempSync(path.join(tmpdir(), "rb-state-"));
    const gates = mkdtempSync(path.join(tmpdir(), "rb-gates-"));
    // One thread-pool thread, held by a write that hangs (a FIFO with no reader where
    // A's temporary result file goes): B's result write waits behind it, like on a slow disk.
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir, env: { RUNBRIDGE_DISPATCHER_URL: lb.url, UV_THREADPOOL_SIZE: "1" } });
    const a = await submit(fx, gatedCommand(path.join(gates, "a"), "a"));
    const b = await submit(fx, gatedCommand(path.join(gates, "b"), "b"));
    const [idA, idB] = [a.body.operation_id as string, b.body.operation_id as string];
    await waitStarted(stateDir, [idA, idB]);
    const fifo = path.join(stateDir, "ledger", `${idA}.json.tmp`);
    execFileSync("mkfifo", [fifo]);
    // Cut off, so the results cannot reach the dispatcher now: only the ledger can keep them.
    lb.refusing = true;
    lb.cutAll();
    await runner.waitForOutput(/disconnected from dispatcher/);
    writeFileSync(path.join(gates, "a"), "");
    await runner.waitForOutput(new RegExp(`operation finished.*${idA}`));
    writeFileSync(path.join(gates, "b"), "");
    await runner.waitForOutput(new RegExp(`operation finished.*${idB}`));
    runner.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 1000));
    // The slow write ends (A's result cannot be saved into a FIFO; only B's matters here).
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      await exited(runner, 15_000);
    } finally {
      closeSync(reader);
      unlinkSync(fifo);
    }
    lb.refusing = false;
    const restartedAt = Date.now();
    await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir, env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    const results = await waitAllTerminal([idB], 30_000);
    report("SIGTERM while a result is being written", { operations: 1, status: results.get(idB)?.status, recovery_ms: Date.now() - restartedAt });
    expect(results.get(idB)).toMatchObject({ status: "completed", exitCode: 0, stdout: "ran b\n" });
  });

  it("a command still running at the end of the drain gets SIGTERM, then its result is delivered as failed before the runner exits", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const marks = mkdtempSync(path.join(tmpdir(), "rb-marks-"));
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_STOP_DRAIN_SECONDS: "1" } });
    // `wait` is interrupted by the signal, so the trap runs at once (a foreground sleep would delay it).
    const res = await submit(fx, `trap 'touch ${marks}/trapped; echo got TERM; exit 143' TERM; echo ready; sleep 30 & wait`);
    const id = res.body.operation_id as string;
    await runner.waitForOutput(/operation started/);
    runner.child.kill("SIGTERM");
    await exited(runner, 15_000);
    expect(existsSync(path.join(marks, "trapped"))).toBe(true);
    // Stored by the dispatcher before the runner exited: no restart needed, nothing "unknown".
    const results = await waitAllTerminal([id], 1_000);
    expect(results.get(id)).toMatchObject({ status: "failed", exitCode: null, stdout: "ready\ngot TERM\n", error: expect.stringMatching(/^the runner was stopping .*the process group was killed$/) });
  });

  it("a start offered while the runner drains waits for the next runner process, and runs there once, to completion", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const stateDir = mkdtempSync(path.join(tmpdir(), "rb-state-"));
    const log = new ExecutionLog();
    const first = await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir });
    const long = await submit(fx, log.command("long", 3));
    await waitStarted(stateDir, [long.body.operation_id]);
    first.child.kill("SIGTERM");
    await first.waitForOutput(/shutting down/);
    // Offered to the draining runner, which is still connected. $PPID tells which runner ran it.
    const second = await submit(fx, `${log.command("second", 1)}; echo by $PPID`);
    expect(second.status).toBe(200);
    await exited(first, 20_000);
    const restartedAt = Date.now();
    const next = await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir });
    const results = await waitAllTerminal([long.body.operation_id, second.body.operation_id], 30_000);
    report("start offered while the runner drains", { operations: 2, second_status: results.get(second.body.operation_id)?.status, recovery_ms: Date.now() - restartedAt });
    expect(results.get(long.body.operation_id)).toMatchObject({ status: "completed", stdout: "ran long\n" });
    expect(results.get(second.body.operation_id)).toMatchObject({ status: "completed", exitCode: 0, stdout: `ran second\nby ${next.pid}\n` });
    expect(log.counts().get("long")).toBe(1);
    expect(log.counts().get("second")).toBe(1);
  });
});
