import { FailureReason } from "@runbridge/contracts";
import { useStackBehindBalancer } from "../helpers/balanced-stack";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture, createOperation, createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";

/** Longer than a runner cut off for a few seconds takes to be back (its reconnect backoff is at most 5 s). */
const GRACE_SECONDS = 20;
/** The commands' time-out (they take 2 s); with RESULT_GRACE_SECONDS (1) a result is overdue 4 s after its start. */
const TIMEOUT_SECONDS = 3;
const OVERDUE_AFTER_SECONDS = TIMEOUT_SECONDS + 1;

/**
 * A runner not connected at the moment a sweep finds its operation's result overdue was taken for
 * lost at once: an operation whose runner was only between reconnects (a network blip, a dispatcher
 * restarting) ended as runner lost, and the real result that came moments later was only audited
 * beside that ending. Now its operations wait for it until it has been away RUNNER_LOST_GRACE_SECONDS.
 */
describe("sweeper: overdue operations of a runner that is away", () => {
  const suite = useStackBehindBalancer({
    dispatcher: { RESULT_GRACE_SECONDS: "1", RUNNER_LOST_GRACE_SECONDS: String(GRACE_SECONDS) },
    gateway: { EXEC_MAX_WAIT_SECONDS: "1" },
  });

  /** Runs `command` on a fresh server's runner (through the balancer) and waits until the runner reported its start. */
  const started = async (command: string) => {
    const { stack, lb } = suite;
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command, timeout_seconds: TIMEOUT_SECONDS });
    expect(res.body).toMatchObject({ status: "running" });
    const id = res.body.operation_id as string;
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).startedAt, 10_000, "the runner to report the start");
    return { runner, id };
  };

  /** Waits, by PostgreSQL's clock (the sweeper's), until `seconds` have passed since the operation's start. */
  const untilSinceStart = (id: string, seconds: number) =>
    waitFor(
      async () => (await testPrisma().$queryRaw<{ past: boolean }[]>`SELECT now() > started_at + make_interval(secs => ${seconds}) AS past FROM operations WHERE id = ${id}::uuid`)[0]?.past,
      30_000,
      `${seconds} s since the operation's start`,
    );

  it("a runner back within the grace delivers its result: the operation completes with it, not as runner lost", async () => {
    const { lb } = suite;
    const { id } = await started("sleep 2; echo real result");
    // Cut off before the command ends, and kept away until its result is overdue and several sweeps
    // (every 500 ms) have found the runner absent.
    lb.refusing = true;
    lb.cutAll();
    try {
      await untilSinceStart(id, OVERDUE_AFTER_SECONDS + 2);
      expect((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status).toBe("running");
    } finally {
      lb.refusing = false;
    }
    const done = await waitUntilEnded(id, 20_000, "the runner to come back with the result");
    expect(done).toMatchObject({ status: "completed", exitCode: 0, stdout: "real result\n", error: null });
    expect(await testPrisma().auditEvent.count({ where: { operationId: id, type: "operation.result_after_end" } })).toBe(0);
  });

  it("a runner away longer than the grace has its overdue operations failed as runner lost, once the grace is over", async () => {
    const { runner, id } = await started("sleep 2; echo never reported");
    runner.child.kill("SIGKILL");
    await runner.exited;
    await untilSinceStart(id, OVERDUE_AFTER_SECONDS + 2);
    expect((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status).toBe("running");
    const ended = await waitUntilEnded(id, (GRACE_SECONDS + 15) * 1000, "the operation to be given up");
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
    // Counted from the runner's disconnect (its last sighting), by PostgreSQL's clock.
    const [away] = await testPrisma().$queryRaw<{ seconds: number }[]>`
      SELECT extract(epoch FROM o.completed_at - s.last_seen_at)::float8 AS seconds FROM operations o JOIN servers s ON s.id = o.server_id WHERE o.id = ${id}::uuid`;
    expect(away?.seconds).toBeGreaterThanOrEqual(GRACE_SECONDS);
  });

  it("a server whose runner was never seen gets no grace", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const { server: never } = await createServer(fx.tenant.id);
    const longAgo = new Date(Date.now() - 300_000);
    const op = await createOperation(fx.tenant.id, never.id, { redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: longAgo, deliverBy: longAgo, dispatchedAt: longAgo, startedAt: longAgo });
    const ended = await waitUntilEnded(op.id, (GRACE_SECONDS / 2) * 1000, "the operation to be given up at once");
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
  });

  it("a runner seen moments ago (one that keeps reconnecting) still has operations overdue for longer than the grace failed", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const { server: flapping } = await createServer(fx.tenant.id);
    const longAgo = new Date(Date.now() - 300_000);
    const op = await createOperation(fx.tenant.id, flapping.id, { redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: longAgo, deliverBy: longAgo, dispatchedAt: longAgo, startedAt: longAgo });
    // Its last connection closed just now, as a crash-looping runner's always has.
    await testPrisma().$executeRaw`UPDATE servers SET last_seen_at = now() WHERE id = ${flapping.id}::uuid`;
    const ended = await waitUntilEnded(op.id, (GRACE_SECONDS / 2) * 1000, "the long overdue operation to be given up");
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
  });

  it("leaves a server within its grace alone for a few sweeps, so that its rows do not hold back other servers' overdue operations", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const { server: away } = await createServer(fx.tenant.id);
    await testPrisma().$executeRaw`UPDATE servers SET last_seen_at = now() WHERE id = ${away.id}::uuid`;
    const overdueSince = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000);
    const waiting = overdueSince(5);
    // A whole batch of the sweep's (200, oldest overdue first) waiting for a runner within its grace...
    await testPrisma().operation.createMany({
      data: Array.from({ length: 200 }, () => ({ tenantId: fx.tenant.id, serverId: away.id, type: "exec", command: "true", timeoutSeconds: 1, redisPrefix: stack.prefix, createdAt: waiting, deliverBy: waiting, dispatchedAt: waiting, startedAt: waiting })),
    });
    // ...and behind them one of a server whose runner was never seen, to be given up at once.
    const { server: gone } = await createServer(fx.tenant.id);
    const later = overdueSince(4);
    const op = await createOperation(fx.tenant.id, gone.id, { redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: later, deliverBy: later, dispatchedAt: later, startedAt: later });
    const ended = await waitUntilEnded(op.id, 8000, "the other server's operation to be given up");
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerLost });
    expect(await testPrisma().operation.count({ where: { serverId: away.id, status: "running" } })).toBe(200);
  });
});
