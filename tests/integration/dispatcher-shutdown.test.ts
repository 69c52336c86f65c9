import { HandshakeRefusal } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture, createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket, untilConnected } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * A dispatcher told to stop finishes its deliveries in flight before it closes runner sockets.
 * From its first step on, it must say it is not ready (load balancers stop sending runners to it)
 * and send new runners away to connect elsewhere, rather than let them in to drop them moments later.
 */
describe("a dispatcher shutting down", () => {
  const sockets: ScriptedSocket[] = [];
  // Declared before useStack, so it runs first: the scripted runners leave before the stack stops.
  afterAll(() => {
    for (const s of sockets) s.disconnect();
  });
  // A start the runner never answers holds the worker's close for up to RUNNER_ACK_TIMEOUT_MS: the window looked at here.
  const suite = useStack({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" }, dispatcher: { RUNNER_ACK_TIMEOUT_MS: "8000" } });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("answers /readyz 503 and refuses new runners while it finishes a delivery", async () => {
    const port = stack.dispatcherPorts[0] as number;
    const readyz = () => fetch(`http://127.0.0.1:${port}/readyz`).then(async (r) => ({ status: r.status, body: (await r.json()) as unknown }));
    expect((await readyz()).status).toBe(200);

    const silent = await createFixture();
    const holder = scriptedRunner(port, silent.runnerToken);
    sockets.push(holder);
    let startArrived = false;
    holder.on("operation:start", () => void (startArrived = true)); // never acknowledged
    await stack.waitRunnerConnected(silent.server.id);
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${silent.token}`).send({ server_id: silent.server.id, command: "true" });
    expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
    await waitFor(async () => startArrived, 10_000, "the start to reach the silent runner");

    stack.dispatchers[0]?.child.kill("SIGTERM");
    await waitFor(async () => (await readyz()).status === 503, 3000, "readiness to turn 503");
    expect(await readyz()).toEqual({ status: 503, body: { status: "draining" } });

    const late = await createFixture();
    const newcomer = scriptedRunner(port, late.runnerToken);
    sockets.push(newcomer);
    const refusal = await new Promise<string>((resolve, reject) => {
      newcomer.on("connect", () => reject(new Error("a runner was let in by a dispatcher shutting down")));
      newcomer.on("connect_error", ((err: Error) => resolve(err.message)) as never);
    });
    expect(refusal).toBe(HandshakeRefusal.ShuttingDown);
    // The delivery in flight was still being waited on: the runner it holds is still connected.
    expect(holder.connected).toBe(true);
  });
});

/**
 * Each runner's disconnect stamps its server's last_seen_at, which the sweeper's RUNNER_LOST_GRACE_SECONDS and
 * the gateway's reconnect wait measure a runner's absence from. A dispatcher stopping closed all its runners at
 * once, and the stamps beyond its pool's connections were still queued when the pool closed: most of a busy
 * dispatcher's runners kept the last_seen_at of their admission, and looked long gone during a rolling restart.
 */
describe("a dispatcher stopping with many runners", () => {
  const sockets: ScriptedSocket[] = [];
  afterAll(() => {
    for (const s of sockets) s.disconnect();
  });
  const suite = useStack();

  it("records when each runner was last seen, more of them than its PostgreSQL pool has connections", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const ids: string[] = [];
    // Three times the pool (DB_POOL_SIZE, 10).
    for (let i = 0; i < 30; i++) {
      const { server, runnerToken } = await createServer(fx.tenant.id);
      const socket = scriptedRunner(stack.dispatcherPorts[0] as number, runnerToken);
      sockets.push(socket);
      await untilConnected(socket);
      ids.push(server.id);
    }
    await waitFor(async () => (await testPrisma().server.count({ where: { id: { in: ids }, lastSeenAt: { not: null } } })) === ids.length, 10_000, "every admission to be stamped");
    const [{ stopping }] = await testPrisma().$queryRaw<[{ stopping: Date }]>`SELECT now() AS stopping`;
    await stack.dispatchers[0]?.stop("SIGTERM");
    const stale = await testPrisma().server.count({ where: { id: { in: ids }, lastSeenAt: { lt: stopping } } });
    expect(stale).toBe(0);
  });
});
