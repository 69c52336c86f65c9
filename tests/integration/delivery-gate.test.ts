import { FailureReason } from "@runbridge/contracts";
import type { DispatcherContext } from "../../apps/dispatcher/src/context";
import { noteHeldBack, undeliveredEnding } from "../../apps/dispatcher/src/deferred";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { FakeProvider } from "../helpers/fake-provider";
import { sample } from "../helpers/metrics";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

const WORKER_CONCURRENCY = 4;
const ACK_TIMEOUT_MS = 3000;
const DELIVERY_TIMEOUT_SECONDS = 12;
const SILENT_OPERATIONS = 24;

/**
 * A runner that is connected but answers nothing (frozen, its disk stalled) must not take the
 * dispatcher's delivery slots from every other server: each delivery to it would hold a slot for
 * the whole ack time-out, attempt after attempt, and a healthy server's operations would queue
 * behind them until their delivery deadline failed them as runner offline.
 */
describe("a connected runner that answers nothing", () => {
  let provider: FakeProvider;
  const suite = useStack(async () => {
    provider = await FakeProvider.start();
    return {
      gateway: { EXEC_MAX_WAIT_SECONDS: "5", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) },
      dispatcher: {
        WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
        RUNNER_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
        RESULT_GRACE_SECONDS: "2",
        RUNNER_LOST_GRACE_SECONDS: "0",
        HCLOUD_API_URL: `${provider.url}/hcloud/v1`,
      },
    };
  });
  afterAll(() => provider.stop());
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });
  const scrape = () => fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`).then((r) => r.text());
  const sockets: ScriptedSocket[] = [];
  afterAll(() => {
    for (const s of sockets) s.disconnect();
  });

  it("holds one delivery slot, not all of them: another server's operations run at once, and its own still end by their deadline", async () => {
    const silent = await createFixture();
    const frozen = scriptedRunner(stack.dispatcherPorts[0] as number, silent.runnerToken);
    sockets.push(frozen);
    const startsSeen = new Set<string>();
    let startMessages = 0;
    frozen.on("operation:start", (op: { operationId: string }) => {
      startMessages += 1;
      startsSeen.add(op.operationId); // never acknowledged
    });
    await stack.waitRunnerConnected(silent.server.id);

    const healthy = await createFixture();
    await stack.startRunner(healthy.runnerToken, healthy.server.id);
    const exec = (fx: typeof healthy, command: string) =>
      stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command, timeout_seconds: 1 });

    // Accepted, then waited on (EXEC_MAX_WAIT_SECONDS) in the background while the healthy server is used.
    const queued = Promise.all(Array.from({ length: SILENT_OPERATIONS }, () => exec(silent, "true")));
    const queuedAt = Date.now();
    // Deliveries admitted before the gate learns that the runner does not answer — those sent within half an ack
    // time-out of the first, at most one per slot — wait out their ack time-out whatever happens: looked at once
    // they have.
    await waitFor(async () => startMessages > 0, 15_000, "the first start to reach the silent runner");
    await new Promise((r) => setTimeout(r, ACK_TIMEOUT_MS / 2 + ACK_TIMEOUT_MS + 1000));

    const latencies: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = Date.now();
      const res = await exec(healthy, `echo healthy-${i}`);
      latencies.push(Date.now() - t0);
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: `healthy-${i}\n` });
    }
    // Without the gate each waited behind the silent server's deliveries (seconds each: the slots were all
    // held for the ack time-out); with it a slot is free at once.
    expect(Math.max(...latencies)).toBeLessThan(1500);

    // A reboot of the silent server through its cloud provider needs no runner: not held back with its deliveries.
    provider.respondWith(201);
    const linked = await stack.api().patch(`/api/v1/servers/${silent.server.id}`).set("Authorization", `Bearer ${silent.apiKey}`).send({ provider: "hetzner", provider_server_id: "42", provider_token: "hcloud-token-for-gate" });
    expect(linked.status).toBe(200);
    const rebootAt = Date.now();
    const reboot = await stack.api().post("/api/automation/v1/reboot").set("Authorization", `Bearer ${silent.token}`).send({ server_id: silent.server.id });
    expect(reboot.status).toBe(202);
    const rebooted = await waitUntilEnded(reboot.body.operation_id as string, 15_000);
    expect(rebooted).toMatchObject({ status: "completed", exitCode: 0 });
    expect(Date.now() - rebootAt).toBeLessThan(1500);

    // Deliveries to the silent runner went one at a time after the first ones went unanswered, rather than
    // every queued operation's start being sent, and sent again every second.
    expect(sample(await scrape(), "runbridge_dispatcher_deliveries_held_back_total", { reason: "unresponsive" })).toBeGreaterThan(0);
    const elapsedCycles = (Date.now() - queuedAt) / ACK_TIMEOUT_MS;
    expect(startMessages).toBeLessThanOrEqual(WORKER_CONCURRENCY + Math.ceil(elapsedCycles) + 1);

    // Held back is not forgotten: every operation of the silent server still ends. Those never handed over fail by
    // their delivery deadline (give or take a retry), not later, saying why — the runner was connected, so not
    // "runner offline"; those handed over, once its runner is gone, as unconfirmed.
    const ids = (await queued).map((r) => r.body.operation_id as string);
    const prisma = testPrisma();
    const neverHandedOver = { id: { in: ids }, dispatchedAt: null };
    await new Promise((r) => setTimeout(r, Math.max(0, queuedAt + (DELIVERY_TIMEOUT_SECONDS + 6) * 1000 - Date.now())));
    const offline = await prisma.operation.findMany({ where: neverHandedOver, select: { status: true, error: true } });
    expect(offline.length).toBeGreaterThan(0);
    for (const op of offline) expect(op).toEqual({ status: "failed", error: FailureReason.RunnerUnresponsive });
    expect(sample(await scrape(), "runbridge_dispatcher_operations_finished_total", { status: "failed", type: "exec", reason: "runner_unresponsive" })).toBe(offline.length);

    frozen.disconnect();
    await waitFor(async () => (await prisma.operation.count({ where: { id: { in: ids }, status: "running" } })) === 0, 20_000, "every operation of the silent server to end");
    const handedOver = await prisma.operation.findMany({ where: { id: { in: ids }, dispatchedAt: { not: null } }, select: { status: true, error: true } });
    for (const op of handedOver) expect(op).toEqual({ status: "failed", error: FailureReason.RunnerUnconfirmed });
  }, 90_000);

  it("remembers a hold-back of a fractional number of milliseconds (delays reckoned from the clock's reading are)", async () => {
    const ctx = { redis: stack.redis, keys: stack.keys } as unknown as DispatcherContext;
    const id = "00000000-0000-4000-8000-000000000001";
    await noteHeldBack(ctx, id, 1234.567);
    expect(await undeliveredEnding(ctx, id)).toEqual({ cause: "runner_unresponsive", error: FailureReason.RunnerUnresponsive });
  });
});
