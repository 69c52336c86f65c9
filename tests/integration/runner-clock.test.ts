import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { sample } from "../helpers/metrics";
import { ROOT } from "../helpers/processes";
import { useStack } from "../helpers/suite";

/**
 * Delivery deadlines are set by PostgreSQL's clock. A runner on a server whose clock is off measures
 * its clock against the platform's (runner:clock) and corrects for it: ahead, it refused every
 * timely start as past its deadline; behind, it stamped starts minutes early.
 */
/**
 * By how much a runner's first measured offset (its clock being right, on the same machine) exceeds what
 * the measurement can explain: half its own round trip, and 20 ms for the dispatcher's reading and a loaded
 * machine. Negative when the measurement is sound.
 */
function measuredOffsetError(output: string): number {
  const m = /"message":"measured the platform's clock","offsetMs":(-?\d+),"roundTripMs":(\d+)/.exec(output);
  if (!m) throw new Error(`no measurement in:\n${output}`);
  return Math.abs(Number(m[1])) - (Number(m[2]) / 2 + 20);
}

describe("a runner on a server whose clock is off", () => {
  const suite = useStack();

  /** A runner on a clock `skewMs` off, connected, and an exec of `echo on-time` through it; the operation's row. */
  const execWithRunnerOff = async (skewMs: number) => {
    const { stack } = suite;
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, {
      env: { NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_SKEW_MS: String(skewMs) },
    });
    // It says so, once it has measured.
    await runner.waitForOutput(/this server's clock is off from the platform's/);
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo on-time" });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "on-time\n" });
    return testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
  };

  /** The start as stamped, against the handover (PostgreSQL's clock, which stamped dispatched_at). */
  const startAfterHandoverMs = (op: { startedAt: Date | null; dispatchedAt: Date | null }) => (op.startedAt?.getTime() ?? NaN) - (op.dispatchedAt?.getTime() ?? NaN);

  // First in the file: the stack's dispatcher has just booted, and the offset it hands out comes from its boot reading.
  it("on a clock that is right, measures it right, even against a dispatcher that has just booted", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { LOG_LEVEL: "debug" } });
    await runner.waitForOutput(/"message":"measured the platform's clock"/);
    // One machine, one clock: what is left is the error of the two exchanges (half a round trip each,
    // of the quickest of a few). The first query on a new connection pool took ~110 ms here; read off
    // that one alone, the dispatcher's estimate was 55–90 ms ahead, and so was every start stamp.
    expect(measuredOffsetError(runner.output)).toBeLessThan(0);
  });

  it("three minutes ahead: runs a timely start, stamped in the platform's time", async () => {
    const op = await execWithRunnerOff(180_000);
    expect(Math.abs(startAfterHandoverMs(op))).toBeLessThan(5_000);
  });

  it("three minutes behind: stamps its start in the platform's time, not three minutes early", async () => {
    const op = await execWithRunnerOff(-180_000);
    expect(Math.abs(startAfterHandoverMs(op))).toBeLessThan(5_000);
  });

  it.each([
    ["forward", 20_000],
    ["back", -20_000],
  ])("a clock set %s between measurements: its start is recorded between the handover and the end", async (_way, stepMs) => {
    const { stack } = suite;
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, {
      env: { NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_STEP_MS: String(stepMs), LOG_LEVEL: "debug" },
    });
    await runner.waitForOutput(/"message":"measured the platform's clock"/);
    // 20 s, within RUNBRIDGE_CLOCK_SKEW_SECONDS: the start does not look late, so nothing is measured again
    // before it runs, and the runner stamps it by its own clock (the step voids the measurement).
    runner.child.kill("SIGUSR2");
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo stepped" });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "stepped\n" });
    const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
    expect(op.startedAt?.getTime()).toBeLessThanOrEqual(op.completedAt?.getTime() ?? NaN);
    expect(startAfterHandoverMs(op)).toBeGreaterThanOrEqual(0);
  });
});

describe("a runner whose clock is set back while it stops", () => {
  const suite = useStack();

  it("still ends its drain on time: the waits of its shutdown are on the monotonic clock", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, {
      env: { NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_STEP_MS: "-600000", RUNBRIDGE_STOP_DRAIN_SECONDS: "1" },
    });
    const exec = stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "sleep 30" });
    const answered = exec.then((r) => r);
    await runner.waitForOutput(/"message":"operation started"/);
    const stoppingAt = performance.now();
    runner.child.kill("SIGTERM");
    // Set ten minutes back once the drain's deadline is taken: by the wall clock, it would now be ten minutes away.
    await new Promise((r) => setTimeout(r, 200));
    runner.child.kill("SIGUSR2");
    await runner.exited;
    // 1 s of drain, 1 s of kill grace, the results' send.
    expect(performance.now() - stoppingAt).toBeLessThan(10_000);
    expect((await answered).body).toMatchObject({ status: "failed", error: expect.stringMatching(/the runner was stopping .* the process group was killed/) });
  });
});

describe("a dispatcher whose clock is set after it read PostgreSQL's", () => {
  const suite = useStack({ dispatcher: { NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_STEP_MS: "20000", LOG_LEVEL: "debug" } });

  it("still tells runners PostgreSQL's time, not its own", async () => {
    const { stack } = suite;
    const dispatcher = stack.dispatchers[0];
    if (!dispatcher) throw new Error("no dispatcher");
    await dispatcher.waitForOutput(/"message":"read PostgreSQL's clock"/);
    // NTP (or an operator) sets it 20 s forward; its next reading is up to a minute away.
    dispatcher.child.kill("SIGUSR2");
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { LOG_LEVEL: "debug" } });
    await runner.waitForOutput(/"message":"measured the platform's clock"/);
    expect(measuredOffsetError(runner.output)).toBeLessThan(0);
    // And times its own deliveries by the same clock: an exec delivered at once, not 20 s after its acceptance.
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "true" });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
    const metrics = await (await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`)).text();
    const sum = sample(metrics, "runbridge_dispatcher_delivery_latency_seconds_sum", { type: "exec" });
    expect(sum).toBeLessThan(5);
  });
});
