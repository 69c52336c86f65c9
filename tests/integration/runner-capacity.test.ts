import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { sample } from "../helpers/metrics";
import { type Proc, waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

const DELIVERY_TIMEOUT_SECONDS = 5;
/** How long an operation waits for a place on a busy runner (the dispatcher's RUNNER_BUSY_WAIT_MAX_SECONDS): past the delivery deadline. */
const BUSY_WAIT_MAX_SECONDS = 10;

/**
 * A runner runs at most RUNBRIDGE_MAX_CONCURRENT_OPERATIONS operations at once: a start beyond it is
 * refused for later, before anything is recorded, so it runs once a place frees: it waits in line
 * past its delivery deadline — the runner is there and working — up to RUNNER_BUSY_WAIT_MAX_SECONDS,
 * then fails as not started with the runner's reason (runner_deferred). Real dispatcher and runner
 * processes.
 */
describe("a runner at its cap of operations running at once", () => {
  const suite = useStack({
    gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) },
    dispatcher: { RUNNER_BUSY_WAIT_MAX_SECONDS: String(BUSY_WAIT_MAX_SECONDS) },
  });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  /** A server of its own whose runner holds at most `max` operations, and a directory for the commands' marks. */
  async function runnerWithCap(max: number): Promise<{ fx: Fixture; runner: Proc; dir: string }> {
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_MAX_CONCURRENT_OPERATIONS: String(max) } });
    // Taking operations before the test's own (connected is not yet ready: on a loaded machine its first start could
    // wait past the test's short delivery deadline, and the operation the test holds a place with never ran).
    await waitFor(
      async () => {
        const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "true" });
        const ended = res.status < 300 ? await waitUntilEnded(res.body.operation_id as string, 15_000) : null;
        return ended?.status === "completed" || null;
      },
      30_000,
      "the runner to run an operation",
    );
    return { fx, runner, dir: mkdtempSync(path.join(tmpdir(), "rb-capacity-")) };
  }

  async function exec(fx: Fixture, command: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command, ...extra });
    expect(res.status).toBeLessThan(300);
    return res.body.operation_id as string;
  }

  async function cancel(fx: Fixture, id: string): Promise<void> {
    const res = await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${fx.token}`).send({});
    expect(res.status).toBe(202);
  }

  const untilExists = (file: string, what: string) => waitFor(async () => existsSync(file), 15_000, what);
  const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

  it("does not start a third of two running, and starts it once one of them has ended", async () => {
    const { fx, runner, dir } = await runnerWithCap(2);
    const log = path.join(dir, "log");
    const go = path.join(dir, "go");
    // Runs until the test lets it end (30 s at most: it outlives a runner killed by a failed test).
    const first = await exec(fx, `echo "start first" >> ${log}; for i in $(seq 300); do [ -e ${go} ] && break; sleep 0.1; done; echo "end first" >> ${log}`);
    const second = await exec(fx, `echo "start second" >> ${log}; sleep 30`);
    await waitFor(async () => lines(log).length === 2, 15_000, "both to start");

    const third = await exec(fx, `echo third >> ${log}`);
    // Offered again every second meanwhile, and refused each time before anything was recorded.
    await new Promise((r) => setTimeout(r, 2000));
    expect(lines(log)).not.toContain("third");
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: third } })).toMatchObject({ status: "running", startedAt: null });
    expect(runner.output).toContain("runner at capacity");

    writeFileSync(go, "");
    expect(await waitUntilEnded(third, 15_000)).toMatchObject({ status: "completed", exitCode: 0 });
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: first } })).toMatchObject({ status: "completed" });
    expect(lines(log).slice(2)).toEqual(["end first", "third"]);
    await cancel(fx, second);
    await waitUntilEnded(second, 15_000);
  });

  it("keeps a start refused for capacity waiting past its delivery deadline, and runs it once a place frees", async () => {
    const { fx, dir } = await runnerWithCap(1);
    const holder = await exec(fx, `touch ${path.join(dir, "holder")}; sleep 30`);
    await untilExists(path.join(dir, "holder"), "the holder to start");
    const marker = path.join(dir, "waiting");
    const waiting = await exec(fx, `touch ${marker}`);
    await new Promise((r) => setTimeout(r, (DELIVERY_TIMEOUT_SECONDS + 2) * 1000));
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: waiting } })).toMatchObject({ status: "running", startedAt: null, dispatchedAt: null });
    expect(existsSync(marker)).toBe(false);
    await cancel(fx, holder);
    expect(await waitUntilEnded(waiting, 15_000)).toMatchObject({ status: "completed", exitCode: 0 });
    expect(existsSync(marker)).toBe(true);
  });

  it("fails a start still refused for capacity after RUNNER_BUSY_WAIT_MAX_SECONDS as not started, with the runner's reason, and never runs it", async () => {
    const { fx, dir } = await runnerWithCap(2);
    const running = [await exec(fx, `touch ${path.join(dir, "a")}; sleep 30`), await exec(fx, `touch ${path.join(dir, "b")}; sleep 30`)];
    await untilExists(path.join(dir, "a"), "the first to start");
    await untilExists(path.join(dir, "b"), "the second to start");
    const marker = path.join(dir, "third");
    const third = await exec(fx, `touch ${marker}`);

    const ended = await waitUntilEnded(third, (BUSY_WAIT_MAX_SECONDS + 10) * 1000);
    expect(ended).toMatchObject({ status: "failed", exitCode: null, startedAt: null, dispatchedAt: null });
    // It waited in line past its delivery deadline, up to the bound.
    expect((ended.completedAt?.getTime() ?? 0) - ended.createdAt.getTime()).toBeGreaterThanOrEqual((BUSY_WAIT_MAX_SECONDS - 1) * 1000);
    expect(ended.error).toContain("runner was connected but asked for it later until its delivery deadline passed");
    expect(ended.error).toContain("runner at capacity: 2 operations running");
    expect(ended.error).toContain("RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=2");
    const scrape = await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`);
    expect(sample(await scrape.text(), "runbridge_dispatcher_operations_finished_total", { status: "failed", type: "exec", reason: "runner_deferred" })).toBe(1);

    for (const id of running) await cancel(fx, id);
    for (const id of running) expect(await waitUntilEnded(id, 15_000)).toMatchObject({ status: "cancelled" });
    // Its place came free: nothing is left to take it.
    await new Promise((r) => setTimeout(r, 1500));
    expect(existsSync(marker)).toBe(false);
  });

  it("frees the place of an operation that could not be spawned, was cancelled or timed out, once each", async () => {
    const { fx, runner, dir } = await runnerWithCap(1);
    const missingDir = await exec(fx, "true", { working_directory: path.join(dir, "missing") });
    expect(await waitUntilEnded(missingDir, 15_000)).toMatchObject({ status: "failed", error: expect.stringContaining("does not exist") as unknown });
    const cancelled = await exec(fx, `touch ${path.join(dir, "cancelled")}; sleep 30`);
    await untilExists(path.join(dir, "cancelled"), "the command to cancel to start");
    await cancel(fx, cancelled);
    expect(await waitUntilEnded(cancelled, 15_000)).toMatchObject({ status: "cancelled" });
    const timedOut = await exec(fx, "sleep 30", { timeout_seconds: 1 });
    expect(await waitUntilEnded(timedOut, 15_000)).toMatchObject({ status: "timeout" });
    // Each was taken at once: none waited for a place.
    expect(runner.output).not.toContain("runner at capacity");

    // One place, taken: freed more than once, it would let a second in.
    const holder = await exec(fx, `touch ${path.join(dir, "holder")}; sleep 30`);
    await untilExists(path.join(dir, "holder"), "the holder to start");
    const waiting = path.join(dir, "waiting");
    const next = await exec(fx, `touch ${waiting}`);
    await new Promise((r) => setTimeout(r, 2000));
    expect(existsSync(waiting)).toBe(false);
    expect(runner.output).toContain("runner at capacity");
    await cancel(fx, holder);
    expect(await waitUntilEnded(next, 15_000)).toMatchObject({ status: "completed", exitCode: 0 });
    expect(existsSync(waiting)).toBe(true);
  });
});
