import { closeTestPrisma, waitUntilEnded } from "../helpers/db";
import { createOperation } from "../helpers/factories";
import { useStackWithRunner } from "../helpers/suite";

/**
 * The sweeper re-enqueues an undelivered operation whose job the queue lost.
 * A job can be lost two ways: gone entirely (Redis flushed — see the chaos
 * suite), or its hash left behind in no state list (a list evicted). The
 * second used to defeat the re-enqueue: adding a job whose id already has a
 * hash is a no-op in BullMQ.
 */
describe("sweeper: an operation whose job was lost", () => {
  const suite = useStackWithRunner({ dispatcher: { REQUEUE_AFTER_SECONDS: "1" } });

  afterAll(closeTestPrisma);

  it("is delivered when its job hash was left in no state list", async () => {
    const { stack, fx } = suite;
    const op = await createOperation(fx.tenant.id, fx.server.id, {
      command: "echo recovered",
      redisPrefix: stack.prefix,
      createdAt: new Date(Date.now() - 5_000),
    });
    // What BullMQ keeps of a job, with the job in none of the queue's lists.
    await stack.redis.hset(`${stack.keys.bull}:operations:${op.id}`, {
      name: "deliver-operation",
      data: JSON.stringify({ operationId: op.id, serverId: fx.server.id, type: "exec" }),
      opts: "{}",
      timestamp: String(Date.now() - 5_000),
    });
    const done = await waitUntilEnded(op.id, 30_000);
    expect(done).toMatchObject({ status: "completed", exitCode: 0, stdout: "recovered\n" });
  });

  it("fails a deploy whose deployment row was never written, instead of running it out of turn", async () => {
    const { stack, fx } = suite;
    // The gateway wrote the operation, then failed before the deployment row and the job.
    const op = await createOperation(fx.tenant.id, fx.server.id, {
      type: "deploy",
      command: "deploy app@main",
      redisPrefix: stack.prefix,
      createdAt: new Date(Date.now() - 5_000),
    });
    const done = await waitUntilEnded(op.id, 30_000);
    expect(done).toMatchObject({ status: "failed", dispatchedAt: null, startedAt: null, exitCode: null });
    expect(done.error).toMatch(/^deployment not recorded: the gateway failed before recording this deploy.*nothing ran/);
  });
});
