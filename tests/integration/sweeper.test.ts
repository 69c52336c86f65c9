import { randomUUID } from "node:crypto";
import { Queue } from "bullmq";
import { createRedis } from "@runbridge/common";
import { FailureReason, JobName, QueueName } from "@runbridge/contracts";
import { closeTestPrisma, testPrisma, waitUntilEnded } from "../helpers/db";
import { createOperation, createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

/**
 * The sweeper re-enqueues an undelivered operation whose job the queue lost.
 * A job can be lost two ways: gone entirely (Redis flushed — see the chaos
 * suite), or its hash left behind in no state list (a list evicted). The
 * second used to defeat the re-enqueue: adding a job whose id already has a
 * hash is a no-op in BullMQ.
 */
describe("sweeper: an operation whose job was lost", () => {
  // A delivery deadline short enough that holding a job back (below) is bounded by half of it, not by its own 5 s.
  const DELIVERY_TIMEOUT_SECONDS = 6;
  const suite = useStackWithRunner({ dispatcher: { REQUEUE_AFTER_SECONDS: "1" }, gateway: { RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) } });

  afterAll(closeTestPrisma);

  /** The dispatcher's runbridge_dispatcher_sweeper_actions_total for `action`. */
  const swept = async (action: string) => {
    const text = await (await fetch(`http://127.0.0.1:${suite.stack.dispatcherPorts[0]}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`runbridge_dispatcher_sweeper_actions_total{action="${action}",`));
    if (!line) throw new Error(`no runbridge_dispatcher_sweeper_actions_total series for ${action}`);
    return Number(line.split(" ").pop());
  };

  /** The dispatcher's count of the operations of `type` it ended as failed for `reason` (absent until one is). */
  const failedFor = async (type: string, reason: string) => {
    const text = await (await fetch(`http://127.0.0.1:${suite.stack.dispatcherPorts[0]}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`runbridge_dispatcher_operations_finished_total{status="failed",type="${type}",reason="${reason}",`));
    return line ? Number(line.split(" ").pop()) : 0;
  };

  it("is delivered when its job hash was left in no state list", async () => {
    const { stack, fx } = suite;
    const requeuedBefore = await swept("requeued");
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
    // Counted, so an operator sees the queue losing jobs without reading logs.
    expect(await swept("requeued")).toBe(requeuedBefore + 1);
  });

  it("fails a deploy whose deployment row was never written, instead of running it out of turn", async () => {
    const { stack, fx } = suite;
    const before = await swept("deployment_not_recorded");
    const failedBefore = await failedFor("deploy", "deployment_not_recorded");
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
    // Counted once the ending is committed, a moment after the row shows it (seen lagging under load).
    await waitFor(async () => (await swept("deployment_not_recorded")) > before, 5_000, "the sweeper's count");
    expect(await swept("deployment_not_recorded")).toBe(before + 1);
    // The finished operations say why they failed, so a platform failure can be told from a command's.
    await waitFor(async () => (await failedFor("deploy", "deployment_not_recorded")) > failedBefore, 5_000, "the finished count");
    expect(await failedFor("deploy", "deployment_not_recorded")).toBe(failedBefore + 1);
    // Every action has its series from the start.
    expect(await swept("result_lost")).toBe(0);
  });

  it("answers a deploy whose deployment write and whose ending both failed as accepted, not 'nothing was started', and ends it", async () => {
    const { stack, fx } = suite;
    // PostgreSQL refuses this deploy's deployment row and, until the answer is in, every change to its
    // operation: the gateway can neither record the deploy nor end it as not started. Whether the
    // deployment exists is then unknown to it (a commit whose answer was lost looks the same), so
    // "nothing was started" would be a guess that a retry turns into a second deploy.
    const ref = `refuse-${randomUUID().slice(0, 8)}`;
    const tag = ref.replace("-", "_");
    const db = testPrisma();
    // Only this deploy's rows: other test files share the database.
    const refuse = (table: string, row: string) =>
      db.$executeRawUnsafe(`CREATE FUNCTION rb_${tag}_${table}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF ${row} = '${ref}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
          RETURN NEW;
        END $$`);
    await refuse("deployments", "NEW.commit_ref");
    await refuse("operations", "OLD.params->>'commit_ref'");
    await db.$executeRawUnsafe(`CREATE TRIGGER rb_${tag} BEFORE INSERT ON deployments FOR EACH ROW EXECUTE FUNCTION rb_${tag}_deployments()`);
    await db.$executeRawUnsafe(`CREATE TRIGGER rb_${tag} BEFORE UPDATE ON operations FOR EACH ROW EXECUTE FUNCTION rb_${tag}_operations()`);
    let res;
    try {
      const app = await stack
        .api()
        .post("/api/v1/applications")
        .set("Authorization", `Bearer ${fx.apiKey}`)
        .send({ name: "refused", server_id: fx.server.id, working_directory: "/tmp", deploy_command: "true" });
      expect(app.status).toBe(201);
      res = await stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${fx.token}`).send({ application_id: app.body.id, commit_ref: ref });
    } finally {
      for (const table of ["operations", "deployments"]) {
        await db.$executeRawUnsafe(`DROP TRIGGER IF EXISTS rb_${tag} ON ${table}`);
        await db.$executeRawUnsafe(`DROP FUNCTION IF EXISTS rb_${tag}_${table}()`);
      }
    }
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ operation_id: expect.any(String), status: "running" });
    // Its job held back until the write's outcome has settled in PostgreSQL, not delivered at once, and for
    // no more than half the delivery deadline (which the write that did not answer has already eaten into).
    const connection = createRedis(stack.redisUrl);
    const queue = new Queue(QueueName.Operations, { connection, prefix: stack.keys.bull });
    try {
      const job = await queue.getJob(res.body.operation_id);
      expect(await job?.getState()).toBe("delayed");
      expect(job?.opts.delay).toBeGreaterThan(DELIVERY_TIMEOUT_SECONDS * 500 - 1_500);
      expect(job?.opts.delay).toBeLessThanOrEqual(DELIVERY_TIMEOUT_SECONDS * 500);
    } finally {
      await queue.close();
      connection.disconnect();
    }
    // No deployment row, so it may not run out of turn: the dispatcher that takes its job (held back
    // until the write's outcome settled) ends it, saying why, instead of delivering it.
    const done = await waitUntilEnded(res.body.operation_id, 30_000);
    expect(done).toMatchObject({ status: "failed", dispatchedAt: null, startedAt: null });
    expect(done.error).toBe(FailureReason.DeploymentNotRecorded);
  });

  it("reaches a lost job behind more than a batch of operations that merely wait", async () => {
    const { stack, fx } = suite;
    const { server: away } = await createServer(fx.tenant.id);
    const db = testPrisma();
    // 501 operations waiting for a runner that is away, older than the lost one, each with its job in
    // the queue (delayed: no worker takes it meanwhile). The sweeper's batch is 500.
    const waitingSince = Date.now() - 60_000;
    const waiting = Array.from({ length: 501 }, (_, i) => ({
      id: randomUUID(),
      tenantId: fx.tenant.id,
      serverId: away.id,
      type: "exec",
      command: "true",
      timeoutSeconds: 60,
      createdAt: new Date(waitingSince + i),
      deliverBy: new Date(Date.now() + 3_600_000),
      redisPrefix: stack.prefix,
    }));
    await db.operation.createMany({ data: waiting });
    const connection = createRedis(stack.redisUrl);
    const queue = new Queue(QueueName.Operations, { connection, prefix: stack.keys.bull });
    try {
      await queue.addBulk(waiting.map((op) => ({ name: JobName.DeliverOperation, data: { operationId: op.id, serverId: away.id, type: "exec" as const }, opts: { jobId: op.id, delay: 3_600_000 } })));
      // Newer than all of them, and its job is gone.
      const lost = await createOperation(fx.tenant.id, fx.server.id, { command: "echo reached", redisPrefix: stack.prefix, createdAt: new Date(waitingSince + 30_000) });
      const done = await waitUntilEnded(lost.id, 30_000, "the lost job behind the waiting ones to be re-enqueued and run");
      expect(done).toMatchObject({ status: "completed", exitCode: 0, stdout: "reached\n" });
    } finally {
      await db.operation.updateMany({ where: { id: { in: waiting.map((op) => op.id) } }, data: { status: "cancelled", completedAt: new Date() } });
      for (const op of waiting) await queue.remove(op.id);
      await queue.close();
      connection.disconnect();
    }
  });

  it("keeps one stack trace on a job retried while its runner is away, not one per attempt", async () => {
    const { stack, fx } = suite;
    const { server: away } = await createServer(fx.tenant.id);
    // No job: the sweeper enqueues it (with the job catalog's options), and each attempt fails at once.
    const op = await createOperation(fx.tenant.id, away.id, { redisPrefix: stack.prefix, createdAt: new Date(Date.now() - 5_000), deliverBy: new Date(Date.now() + 120_000) });
    const connection = createRedis(stack.redisUrl);
    const queue = new Queue(QueueName.Operations, { connection, prefix: stack.keys.bull });
    try {
      const job = await waitFor(async () => {
        const j = await queue.getJob(op.id);
        return j && j.attemptsMade >= 3 ? j : null;
      }, 20_000, "three failed attempts");
      expect(job.stacktrace).toHaveLength(1);
    } finally {
      await testPrisma().operation.update({ where: { id: op.id }, data: { status: "cancelled", completedAt: new Date() } });
      await queue.remove(op.id).catch(() => undefined);
      await queue.close();
      connection.disconnect();
    }
  });

  it("does not give up on a start handed over long ago while a runner could still take it (its delivery deadline), and does after", async () => {
    const { stack, fx } = suite;
    const { server: away } = await createServer(fx.tenant.id);
    const longAgo = new Date(Date.now() - 600_000);
    const base = { redisPrefix: stack.prefix, timeoutSeconds: 1, createdAt: longAgo, dispatchedAt: longAgo };
    // Its start still sits in a frozen runner's socket, which may take it until its deadline.
    const deliverable = await createOperation(fx.tenant.id, away.id, { ...base, deliverBy: new Date(Date.now() + 120_000) });
    const pastDeadline = await createOperation(fx.tenant.id, away.id, { ...base, deliverBy: longAgo });
    const ended = await waitUntilEnded(pastDeadline.id, 20_000, "the operation past its deadline to be given up");
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerUnconfirmed });
    expect((await testPrisma().operation.findUniqueOrThrow({ where: { id: deliverable.id } })).status).toBe("running");
    await testPrisma().operation.update({ where: { id: deliverable.id }, data: { status: "cancelled", completedAt: new Date() } });
  });
});
