import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { TcpBalancer } from "../helpers/tcp-balancer";
import { TestStack } from "../helpers/stack";
import { waitAllTerminal } from "./helpers";

/**
 * Two deployments (two REDIS_PREFIXes) sharing one database: each one's sweeper
 * recovers only its own operations. A queued operation of the other looks
 * exactly like a lost job from here, and must be left alone.
 */
describe("deployments sharing a database", () => {
  let mine: TestStack;
  let other: TestStack;
  let lb: TcpBalancer;

  beforeAll(async () => {
    mine = await TestStack.start({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
    other = await TestStack.start({ dispatcher: { REQUEUE_AFTER_SECONDS: "1", SWEEP_INTERVAL_MS: "200" } });
    lb = new TcpBalancer([...mine.dispatcherPorts]);
    await lb.listen();
  });
  afterAll(async () => {
    await mine.stop();
    await other.stop();
    await lb.close();
    await closeTestPrisma();
  });

  it("leaves another deployment's queued operation to that deployment", async () => {
    const fx = await createFixture();
    await mine.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    await mine.dispatchers[0]?.stop("SIGKILL");
    const res = await mine.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo mine" });
    expect(res.body.status).toBe("running");
    const id: string = res.body.operation_id;

    // Well past the other deployment's re-enqueue age, over many of its sweeps.
    await new Promise((r) => setTimeout(r, 3000));
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "running", dispatchedAt: null, redisPrefix: mine.prefix });
    expect(await other.gateway.queue.getJob(id)).toBeUndefined();

    // Its own deployment takes it from its queue once a dispatcher is back.
    await mine.startDispatcher();
    lb.backends = [mine.dispatcherPorts[mine.dispatcherPorts.length - 1] as number];
    const results = await waitAllTerminal([id], 30_000);
    expect(results.get(id)).toMatchObject({ status: "completed", stdout: "mine\n" });
  });
});
