import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { sample } from "../helpers/metrics";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

const WAITING = 30;
const BUSY_WAIT_MAX_SECONDS = 10;
const BUSY = { ok: false, error: "runner at capacity: 64 operations running, the most it holds at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=64)", retryable: true, busy: true };

/**
 * Operations waiting for a place on a runner at its cap are not each sent again every round (a claim,
 * its release and a trip to the runner apiece): one start now and then finds out whether a place freed,
 * the others wait without being sent — past their delivery deadline, up to RUNNER_BUSY_WAIT_MAX_SECONDS,
 * then fail as not started with the runner's reason.
 */
describe("a runner that answers every start busy", () => {
  const suite = useStack({
    gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: "5" },
    dispatcher: { RUNNER_BUSY_WAIT_MAX_SECONDS: String(BUSY_WAIT_MAX_SECONDS) },
  });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });
  const sockets: ScriptedSocket[] = [];
  afterAll(() => {
    for (const s of sockets) s.disconnect();
  });

  it("is asked now and then, not once per waiting operation every round; they fail at the bound with its reason", async () => {
    const fx = await createFixture();
    const runner = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    sockets.push(runner);
    const startsAt: number[] = [];
    runner.on("operation:start", (op: { spec: { kind: string } }, ack: (reply: unknown) => void) => {
      // A runner at its cap still takes a reboot (a server full of hung commands is where one is needed).
      if (op.spec.kind === "reboot") return ack({ ok: true, state: "started" });
      startsAt.push(Date.now());
      ack(BUSY);
    });
    await stack.waitRunnerConnected(fx.server.id);

    const queuedAt = Date.now();
    const answers = await Promise.all(
      Array.from({ length: WAITING }, () => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "true" })),
    );
    const ids = answers.map((r) => r.body.operation_id as string);
    await new Promise((r) => setTimeout(r, 2500));
    // A reboot is not held back with them, even right after a start found the runner busy (when the next one
    // would wait its turn).
    const seen = startsAt.length;
    await waitFor(async () => startsAt.length > seen, 10_000, "the next start to find the runner busy");
    const rebootAt = Date.now();
    const reboot = await stack.api().post("/api/automation/v1/reboot").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id });
    expect(reboot.status).toBe(202);
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id: reboot.body.operation_id as string } })).dispatchedAt, 5000, "the reboot to be handed over");
    expect(Date.now() - rebootAt).toBeLessThan(1500);
    await new Promise((r) => setTimeout(r, Math.max(0, queuedAt + 8000 - Date.now())));

    // Past their 5 s delivery deadline, still waiting, never started.
    expect(await testPrisma().operation.count({ where: { id: { in: ids }, status: "running", startedAt: null } })).toBe(WAITING);
    // And none handed over: the one start in flight now and then holds its claim (dispatched_at) from just before
    // its send until the refusal is taken back, so all are unclaimed between two of them.
    const unclaimed = () => testPrisma().operation.count({ where: { id: { in: ids }, status: "running", dispatchedAt: null } });
    await waitFor(async () => (await unclaimed()) === WAITING, 1500, `all ${WAITING} unclaimed at once`);
    // Each operation was offered once as it came (before the first "busy" was heard); after that, about two
    // starts a second at most — not the 30 every 2 s (about 90 in these 6 s) of each being sent again.
    const later = startsAt.filter((t) => t >= queuedAt + 2000 && t < queuedAt + 8000).length;
    expect(later).toBeGreaterThan(0);
    expect(later).toBeLessThanOrEqual(20);
    expect(sample(await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`).then((r) => r.text()), "runbridge_dispatcher_deliveries_held_back_total", { reason: "busy" })).toBeGreaterThan(0);

    // At the bound, every one fails as not started with the runner's reason, held back or not.
    for (const id of ids) {
      const ended = await waitUntilEnded(id, 15_000);
      expect(ended).toMatchObject({ status: "failed", startedAt: null, dispatchedAt: null });
      expect(ended.error).toContain("asked for it later until its delivery deadline passed");
      expect(ended.error).toContain(BUSY.error);
    }
  });
});
