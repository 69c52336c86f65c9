import { FailureReason } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import { useStack } from "../helpers/suite";

const WORKER_CONCURRENCY = 2;
const ACK_TIMEOUT_MS = 2000;
const DELIVERY_TIMEOUT_SECONDS = 10;
const FROZEN_SERVERS = 5;
const OPERATIONS_EACH = 6;

/**
 * Each unresponsive runner's deliveries go one at a time (delivery-gate.ts), that one probe holding a slot for
 * the ack time-out; more frozen runners than WORKER_CONCURRENCY would have probes hold every slot, round after
 * round, and a healthy server's operations wait behind them. Probes hold at most a share of the slots.
 */
describe("more frozen runners than delivery slots", () => {
  const suite = useStack({
    gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) },
    dispatcher: { WORKER_CONCURRENCY: String(WORKER_CONCURRENCY), RUNNER_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS), RESULT_GRACE_SECONDS: "2", RUNNER_LOST_GRACE_SECONDS: "0" },
  });
  const sockets: ScriptedSocket[] = [];
  afterAll(() => sockets.forEach((s) => s.disconnect()));

  it("leaves slots for a server that answers: its operations are delivered at once while the frozen ones are still probed", async () => {
    const { stack } = suite;
    const port = stack.dispatcherPorts[0] as number;
    const exec = (fx: { token: string; server: { id: string } }, command: string) =>
      stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command, timeout_seconds: 1 });

    const frozen = await Promise.all(Array.from({ length: FROZEN_SERVERS }, () => createFixture()));
    const startsAt: number[][] = frozen.map(() => []);
    for (const [i, fx] of frozen.entries()) {
      const socket = scriptedRunner(port, fx.runnerToken);
      sockets.push(socket);
      socket.on("operation:start", () => void startsAt[i]?.push(Date.now())); // never acknowledged
      await stack.waitRunnerConnected(fx.server.id);
    }
    const healthy = await createFixture();
    const healthySocket = scriptedRunner(port, healthy.runnerToken);
    sockets.push(healthySocket);
    const healthyStarts = new Map<string, number>();
    healthySocket.on("operation:start", (op: { operationId: string }, ack: (reply: unknown) => void) => {
      healthyStarts.set(op.operationId, Date.now());
      ack({ ok: true, state: "started" });
    });
    await stack.waitRunnerConnected(healthy.server.id);

    // A runner's first deliveries hold their slot for the ack time-out whatever happens: nothing can tell a frozen
    // runner from a healthy one before it leaves a request unanswered. One operation each first, then the rest,
    // measured once every frozen runner has left one unanswered.
    const first = await Promise.all(frozen.map((fx) => exec(fx, "true")));
    await waitFor(async () => startsAt.every((s) => s.length > 0), 15_000, "a start to reach every frozen runner");
    const queuedAt = Date.now();
    const queued = await Promise.all(frozen.flatMap((fx) => Array.from({ length: OPERATIONS_EACH - 1 }, () => exec(fx, "true"))));
    const ids = [...first, ...queued].map((r) => r.body.operation_id as string);
    const lastFirst = Math.max(...startsAt.map((s) => s[0] as number));
    await new Promise((r) => setTimeout(r, Math.max(0, lastFirst + ACK_TIMEOUT_MS + 500 - Date.now())));

    const measuredFrom = Date.now();
    const latencies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const res = await exec(healthy, `echo healthy-${i}`);
      const id = res.body.operation_id as string;
      const startedAt = await waitFor(async () => healthyStarts.get(id), 15_000, "the healthy server's start");
      latencies.push(startedAt - t0);
    }
    // Without the bound every slot was held by a frozen runner's probe, round after round, and each of these
    // waited behind them (many seconds; until the frozen ones' deadlines failed them).
    expect(Math.max(...latencies)).toBeLessThan(3000);
    // Meanwhile the frozen runners were still asked whether they answer again.
    await new Promise((r) => setTimeout(r, Math.max(0, measuredFrom + 2 * ACK_TIMEOUT_MS + 500 - Date.now())));
    expect(startsAt.flat().filter((t) => t >= measuredFrom).length).toBeGreaterThan(0);

    // And every frozen server's operation still ends: never handed over, by its delivery deadline (give or take a
    // retry), as runner unresponsive; handed over, once its runner is gone, as unconfirmed.
    const prisma = testPrisma();
    await new Promise((r) => setTimeout(r, Math.max(0, queuedAt + (DELIVERY_TIMEOUT_SECONDS + 6) * 1000 - Date.now())));
    const neverHandedOver = await prisma.operation.findMany({ where: { id: { in: ids }, dispatchedAt: null }, select: { status: true, error: true } });
    expect(neverHandedOver.length).toBeGreaterThan(0);
    for (const op of neverHandedOver) expect(op).toEqual({ status: "failed", error: FailureReason.RunnerUnresponsive });
    sockets.forEach((s) => s.disconnect());
    await waitFor(async () => (await prisma.operation.count({ where: { id: { in: ids }, status: "running" } })) === 0, 15_000, "every operation of the frozen servers to end");
  }, 60_000);
});
