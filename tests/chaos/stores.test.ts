import { migrateDeploy } from "../../scripts/src/migrate";
import { FailureReason } from "@runbridge/contracts";
import { closeTestPrisma, useTestDatabase } from "../helpers/db";
import { createAutomationKey, createFixture } from "../helpers/factories";
import { FakeDocker } from "../helpers/fake-docker";
import { PrivatePostgres, PrivateRedis } from "../helpers/private-services";
import { waitFor } from "../helpers/processes";
import { TcpBalancer } from "../helpers/tcp-balancer";
import { TestStack } from "../helpers/stack";
import { ExecutionLog, report, waitAllTerminal } from "./helpers";

type Fx = Awaited<ReturnType<typeof createFixture>>;
const exec = (stack: TestStack, fx: Fx, body: Record<string, unknown>) =>
  stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, timeout_seconds: 60, ...body });

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = Date.now();
  const v = await fn();
  return [v, Date.now() - t];
}

/** Redis lost, flushed or restarted (it keeps nothing here): nothing stuck, nothing run twice. */
describe("chaos: Redis lost", () => {
  let redis: PrivateRedis;
  let stack: TestStack;
  let lb: TcpBalancer;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    stack = await TestStack.start({
      redisUrl: redis.url,
      dispatcher: { REQUEUE_AFTER_SECONDS: "2", RESULT_GRACE_SECONDS: "5" },
      gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: "60" },
    });
    lb = new TcpBalancer(stack.dispatcherPorts);
    await lb.listen();
  });
  afterAll(async () => {
    await stack.stop().catch(() => undefined);
    await lb.close();
    redis.down();
    await closeTestPrisma();
  });

  it("FLUSHALL with operations queued: they are re-enqueued from Postgres, or failed when their secrets went with the queue", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    // No dispatcher takes jobs: they wait in the queue.
    await stack.dispatchers[0]?.stop("SIGKILL");
    const log = new ExecutionLog();
    const plain = await Promise.all(Array.from({ length: 10 }, (_, i) => exec(stack, fx, { command: log.command(`plain-${i}`) })));
    const secret = await Promise.all(Array.from({ length: 5 }, (_, i) => exec(stack, fx, { command: log.command(`secret-${i}`), env: { TOKEN: "s3cr3t-value" } })));
    for (const r of [...plain, ...secret]) expect(r.body.status).toBe("running");

    await stack.redis.flushall();
    const flushedAt = Date.now();
    const d = await stack.startDispatcher();
    lb.backends = [stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number];
    expect(d.running).toBe(true);

    const results = await waitAllTerminal([...plain, ...secret].map((r) => r.body.operation_id), 60_000);
    const counts = log.counts();
    report("FLUSHALL with 15 operations queued", {
      operations: 15,
      requeued_and_completed: plain.filter((r) => results.get(r.body.operation_id)?.status === "completed").length,
      failed_queue_lost: secret.filter((r) => results.get(r.body.operation_id)?.error === FailureReason.QueueLost).length,
      duplicated: [...counts.values()].filter((c) => c > 1).length,
      recovery_ms: Date.now() - flushedAt,
    });
    plain.forEach((r, i) => {
      expect(results.get(r.body.operation_id)?.status).toBe("completed");
      expect(counts.get(`plain-${i}`)).toBe(1);
    });
    secret.forEach((r, i) => {
      expect(results.get(r.body.operation_id)).toMatchObject({ status: "failed", error: FailureReason.QueueLost });
      expect(counts.get(`secret-${i}`)).toBeUndefined();
    });
  });

  it("FLUSHALL with a registry login queued: it is re-enqueued and its password re-opened from the stored credential", async () => {
    const fx = await createFixture();
    const docker = new FakeDocker();
    await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url, PATH: docker.path } });
    const password = `pw-${Date.now()}-flush`;
    const cred = await stack.api().post("/api/v1/registry-credentials").set("Authorization", `Bearer ${fx.apiKey}`).send({ name: "ghcr", registry_url: "ghcr.io", username: "octo", password });
    expect(cred.status).toBe(201);
    // No dispatcher takes the job; then the queue is lost with it.
    await stack.dispatchers[stack.dispatchers.length - 1]?.stop("SIGKILL");
    const login = await stack.api().post("/api/automation/v1/registry-auth/login").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, credential_id: cred.body.id });
    expect(login.status).toBe(202);
    await stack.redis.flushall();
    await stack.startDispatcher();
    lb.backends = [stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number];
    const results = await waitAllTerminal([login.body.operation_id], 60_000);
    expect(results.get(login.body.operation_id)).toMatchObject({ status: "completed", exitCode: 0 });
    const calls = docker.calls().filter((c) => c.argv[0] === "login");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.stdin).toBe(password);
    expect(calls[0]?.argv.join(" ")).not.toContain(password);
  });

  it("Redis restarted under load: 503 quickly while it is down, then everything finishes once", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    const log = new ExecutionLog();
    const inFlight = await Promise.all(Array.from({ length: 10 }, (_, i) => exec(stack, fx, { command: log.command(`load-${i}`, 1) })));
    redis.down();
    const downAt = Date.now();
    const [during, ms] = await timed(() => exec(stack, fx, { command: "true" }));
    expect(during.status).toBe(503);
    expect(during.body).toEqual({ detail: expect.any(String) });
    expect(ms).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 1000));
    redis.up();
    const results = await waitAllTerminal(
      inFlight.map((r) => r.body.operation_id as string),
      90_000,
    );
    // The gateway recovers by itself.
    const after = await waitFor(async () => {
      const r = await exec(stack, fx, { command: "echo back" });
      return r.status === 200 && r.body.status === "completed" ? r : null;
    }, 60_000);
    const counts = log.counts();
    report("Redis restarted (empty) under load", {
      operations: 10,
      completed: [...results.values()].filter((r) => r.status === "completed").length,
      duplicated: [...counts.values()].filter((c) => c > 1).length,
      first_503_ms: ms,
      recovery_ms: Date.now() - downAt,
    });
    expect(after.body.stdout).toBe("back\n");
    for (const r of results.values()) expect(["completed", "failed"]).toContain(r.status);
    // Once: every command that ran ran once, and each completed operation's command is among them.
    for (const [, c] of counts) expect(c).toBe(1);
    const completed = inFlight.flatMap((r, i) => (results.get(r.body.operation_id as string)?.status === "completed" ? [`load-${i}`] : []));
    for (const label of completed) expect([label, counts.get(label)]).toEqual([label, 1]);
  });
});

/** PostgreSQL stopped and started: 503s while down, results kept by runners until it is back. */
describe("chaos: PostgreSQL stopped and started", () => {
  let pg: PrivatePostgres;
  let stack: TestStack;

  beforeAll(async () => {
    pg = await PrivatePostgres.start();
    expect(await migrateDeploy({ ...process.env, DATABASE_URL: pg.url }, true)).toBe(0);
    await useTestDatabase(pg.url);
    stack = await TestStack.start({ databaseUrl: pg.url, gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
  });
  afterAll(async () => {
    await stack.stop().catch(() => undefined);
    await closeTestPrisma();
    pg.destroy();
  });

  it("answers 503 while it is down, recovers by itself, and loses no result", async () => {
    const fx = await createFixture();
    // Never used yet, so not in the gateway's key cache: its lookup needs PostgreSQL.
    const cold = await createAutomationKey(fx.tenant.id);
    await stack.startRunner(fx.runnerToken, fx.server.id);
    const log = new ExecutionLog();
    const inFlight = await Promise.all(Array.from({ length: 5 }, (_, i) => exec(stack, fx, { command: log.command(`pg-${i}`, 2) })));
    for (const r of inFlight) expect(r.body.status).toBe("running");
    await closeTestPrisma();
    pg.down();
    const downAt = Date.now();
    const [during, ms] = await timed(() => exec(stack, fx, { command: "true" }));
    expect(during.status).toBe(503);
    expect(during.body).toEqual({ detail: expect.any(String) });
    expect(ms).toBeLessThan(8000);
    const [poll, pollMs] = await timed(() =>
      stack.api().get(`/api/automation/v1/operations/${inFlight[0]?.body.operation_id}`).set("Authorization", `Bearer ${fx.token}`),
    );
    expect(poll.status).toBe(503);
    // Failing in the key lookup (the front door's authentication, before Express): still the 503.
    const coldKey = await exec(stack, { ...fx, token: cold.token }, { command: "true" });
    expect([coldKey.status, coldKey.body]).toEqual([503, { detail: expect.stringMatching(/temporarily unavailable/) }]);
    expect(coldKey.headers["retry-after"]).toBe("5");
    await new Promise((r) => setTimeout(r, 3000)); // The commands finish while it is down.
    pg.up();
    const upAt = Date.now();
    const results = await waitAllTerminal(
      inFlight.map((r) => r.body.operation_id as string),
      60_000,
    );
    const after = await waitFor(async () => {
      const r = await exec(stack, fx, { command: "echo back" });
      return r.status === 200 && r.body.status === "completed" ? r : null;
    }, 30_000);
    report("PostgreSQL stopped for ~4 s with 5 operations running", {
      operations: 5,
      completed: [...results.values()].filter((r) => r.status === "completed").length,
      duplicated: [...log.counts().values()].filter((c) => c > 1).length,
      first_503_ms: ms,
      poll_503_ms: pollMs,
      recovery_after_up_ms: Date.now() - upAt,
      down_ms: upAt - downAt,
    });
    expect(after.body.stdout).toBe("back\n");
    for (const r of results.values()) expect(r.status).toBe("completed");
    for (let i = 0; i < 5; i++) expect(log.counts().get(`pg-${i}`)).toBe(1);
  });
});
