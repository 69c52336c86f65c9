import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import request from "supertest";
import { createFailFastRedis } from "@runbridge/common";
import { FailureCause, FailureReason, JobName, QueueName } from "@runbridge/contracts";
import { createDb } from "@runbridge/db";
import type { AutomationAuth } from "../../apps/gateway/src/auth/locals";
import type { GatewayContext } from "../../apps/gateway/src/context";
import { createApp } from "../../apps/gateway/src/app";
import { OperationNotStartedError, OutcomeUnknownError, ServiceUnavailableError } from "../../apps/gateway/src/errors";
import { failUndispatched, startOperation } from "../../apps/gateway/src/services/operations";
import { closeTestPrisma, testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { ReplyDropProxy } from "../helpers/reply-drop-proxy";
import { TestStack } from "../helpers/stack";

/**
 * An operation whose job cannot be enqueued must not stay `running` forever:
 * it is ended as failed and the caller gets a 503 "not started" — but only
 * when that is true. A failed enqueue does not prove the job is absent.
 */
describe("an operation that cannot be enqueued", () => {
  let stack: TestStack;

  beforeAll(async () => {
    // A gateway's real context, no dispatcher; its queue's Redis connection closed, as when Redis is unreachable.
    stack = await TestStack.start({ dispatchers: 0 });
    (await stack.gateway.queue.client).disconnect();
  });

  afterAll(async () => {
    await stack.stop();
    await closeTestPrisma();
  });

  const context = (): GatewayContext => stack.gateway;
  /** This gateway's count of the operations it ended because they could not be queued, of one type, by recorded status. */
  const failedHere = async (type: string, status = "failed") => {
    const text = (await stack.api().get("/metrics").expect(200)).text;
    const line = text.split("\n").find((l) => l.startsWith(`runbridge_dispatcher_operations_finished_total{status="${status}",type="${type}",reason="not_queued",service="gateway"}`));
    return line ? Number(line.split(" ").pop()) : 0;
  };

  it("is ended as failed with the reason, and the caller gets a 503", async () => {
    const f = await createFixture();
    const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
    const before = await failedHere("exec");
    const started = startOperation(context(), auth, { serverId: f.server.id, type: "exec", command: "true", timeoutSeconds: 60 });
    await expect(started).rejects.toThrow(ServiceUnavailableError);
    // No dispatcher ever sees it: the gateway counts it among the operations that ended.
    expect(await failedHere("exec")).toBe(before + 1);
    await expect(started).rejects.toThrow("The job queue is unreachable; the operation was not started. Retry shortly.");
    const rows = await testPrisma().operation.findMany({ where: { serverId: f.server.id } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "failed", error: "could not be queued: the job queue (Redis) was unreachable" });
    expect(rows[0]?.completedAt).toBeInstanceOf(Date);
    // Ended as every operation ends: with its audit event.
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: rows[0]?.id }, orderBy: { createdAt: "asc" } });
    expect(audit.map((a) => [a.type, (a.data as { status?: string }).status])).toEqual([
      ["operation.created", undefined],
      ["operation.finished", "failed"],
    ]);
  });

  it("counts a registry logout it ends as recorded: completed (exit 125), with the platform's reason", async () => {
    const f = await createFixture();
    const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
    const before = { completed: await failedHere("registry_logout", "completed"), failed: await failedHere("registry_logout") };
    const started = startOperation(context(), auth, { serverId: f.server.id, type: "registry_logout", command: "docker logout ghcr.io", timeoutSeconds: 60, params: { registry_url: "ghcr.io", registry_type: "ghcr" } });
    await expect(started).rejects.toThrow(ServiceUnavailableError);
    expect(await testPrisma().operation.findFirstOrThrow({ where: { serverId: f.server.id } })).toMatchObject({ status: "completed", exitCode: 125 });
    expect({ completed: await failedHere("registry_logout", "completed"), failed: await failedHere("registry_logout") }).toEqual({ completed: before.completed + 1, failed: before.failed });
  });

  it("never overwrites an operation that has already ended", async () => {
    const f = await createFixture();
    const done = await createOperation(f.tenant.id, f.server.id, { status: "completed", exitCode: 0, completedAt: new Date() });
    const before = await failedHere("exec");
    expect(await failUndispatched(context(), done, FailureCause.NotQueued, "should not land")).toBe(false);
    // Whoever ended it counted it then: counting it again would count it twice.
    expect(await failedHere("exec")).toBe(before);
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: done.id } });
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null });
  });

  it("never ends one a dispatcher has claimed (it may be running)", async () => {
    const f = await createFixture();
    const claimed = await createOperation(f.tenant.id, f.server.id, { dispatchedAt: new Date() });
    const before = await failedHere("exec");
    expect(await failUndispatched(context(), claimed, FailureCause.NotQueued, "should not land")).toBe(false);
    expect(await failedHere("exec")).toBe(before);
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: claimed.id } })).toMatchObject({ status: "running", error: null });
  });

  it("says it could not end it when the database is gone, and does not throw", async () => {
    const gone = createDb("postgresql://postgres@127.0.0.1:1/nothing", { max: 1, connectionTimeoutMillis: 500 });
    try {
      const ctx = { ...context(), operations: gone.operations } as GatewayContext;
      await expect(failUndispatched(ctx, { id: "9b2f6c1e-1f0a-4d6e-9a57-3c1b8f0e2d11", serverId: "9b2f6c1e-1f0a-4d6e-9a57-3c1b8f0e2d12" }, FailureCause.NotQueued, "why")).resolves.toBe(false);
    } finally {
      await gone.close().catch(() => undefined);
    }
  });

  it("with neither the queue nor the database: answered as accepted, never 'not started' (the sweeper re-enqueues it)", async () => {
    const f = await createFixture();
    const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
    const gone = createDb("postgresql://postgres@127.0.0.1:1/nothing", { max: 1, connectionTimeoutMillis: 500 });
    try {
      // The row is written through the real store; only ending it finds PostgreSQL gone.
      const real = context().operations;
      const operations = Object.assign(Object.create(Object.getPrototypeOf(real) as object) as typeof real, real, { finish: gone.operations.finish.bind(gone.operations) });
      const op = await startOperation({ ...context(), operations }, auth, { serverId: f.server.id, type: "exec", command: "true", timeoutSeconds: 60 });
      expect(op.status).toBe("running");
      expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } })).toMatchObject({ status: "running", dispatchedAt: null });
    } finally {
      await gone.close().catch(() => undefined);
    }
  });

  it("answers an exec 503 and leaves no completion waiter behind", async () => {
    const f = await createFixture();
    // Presence as a dispatcher writes it: the request gets as far as the enqueue.
    await stack.redis.set(stack.keys.runnerPresence(f.server.id), "test/none", "EX", 60);
    const r = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${f.token}`)
      .send({ server_id: f.server.id, command: "true" });
    expect(r.status).toBe(503);
    expect(r.body).toEqual({ detail: "The job queue is unreachable; the operation was not started. Retry shortly." });
    expect(stack.gateway.waiter.pending).toBe(0);
  });

  it("answers a registry logout 200 with a completed operation, exit code 125, not 503 (the spec: logout failures are not 5xx)", async () => {
    const f = await createFixture();
    await stack.redis.set(stack.keys.runnerPresence(f.server.id), "test/none", "EX", 60);
    const r = await stack
      .api()
      .post("/api/automation/v1/registry-auth/logout")
      .set("Authorization", `Bearer ${f.token}`)
      .send({ server_id: f.server.id, registry_url: "ghcr.io" });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      operation_id: expect.any(String),
      status: "completed",
      error: "could not be queued: the job queue (Redis) was unreachable",
      exit_code: 125,
      stdout: "",
      stderr: "could not be queued: the job queue (Redis) was unreachable\n",
      stdout_truncated: false,
      stderr_truncated: false,
      duration_ms: null,
    });
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: r.body.operation_id } });
    expect(row).toMatchObject({ type: "registry_logout", status: "completed", exitCode: 125, dispatchedAt: null });
    expect(stack.gateway.waiter.pending).toBe(0);
  });
});

/**
 * The enqueue's reply lost after Redis ran it (the connection died between
 * the write and the answer; the fail-fast connection gives up): the job exists
 * though the add failed. Whoever wins — the gateway ending the operation as
 * not started, or a dispatcher claiming it — the client's answer and what runs
 * agree, and nothing runs twice.
 */
describe("an enqueue whose reply was lost after Redis ran it", () => {
  let stack: TestStack;
  const dir = mkdtempSync(path.join(tmpdir(), "rb-enqueue-lost-"));

  beforeAll(async () => {
    // A quick sweeper: it must fail the unconfirmed insert below rather than re-enqueue it.
    stack = await TestStack.start({ dispatcher: { REQUEUE_AFTER_SECONDS: "2" } });
  });
  afterAll(async () => {
    await stack.stop();
    await closeTestPrisma();
  });

  /** A gateway context whose queue reaches Redis through a proxy that loses the add's reply. */
  async function contextLosingTheReply(holdMs: number): Promise<{ ctx: GatewayContext; done: () => Promise<void> }> {
    const proxy = new ReplyDropProxy(Number(new URL(stack.commonEnv().REDIS_URL ?? "redis://127.0.0.1:6379").port || 6379));
    await proxy.listen();
    // A short disconnectTimeout: once the proxy has cut the path, ioredis's disconnect() waits for a
    // "close" that has already happened and keeps a timer (2 s by default) that holds the jest worker open.
    const connection = createFailFastRedis(`redis://127.0.0.1:${proxy.port}`, { disconnectTimeout: 50 });
    connection.on("error", () => undefined);
    const queue = new Queue(QueueName.Operations, { connection, prefix: stack.gateway.keys.bull });
    queue.on("error", () => undefined);
    await queue.waitUntilReady();
    proxy.arm(JobName.DeliverOperation, holdMs);
    return {
      ctx: { ...stack.gateway, queue },
      done: async () => {
        await queue.close().catch(() => undefined);
        connection.disconnect();
        await proxy.close();
      },
    };
  }
  const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").length : 0);

  it("ended as not started before any dispatcher claimed it: 503, and the job that exists never runs", async () => {
    const f = await createFixture();
    const marker = path.join(dir, "not-started");
    const { ctx, done } = await contextLosingTheReply(300);
    try {
      const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
      // No runner yet: the dispatcher cannot hand it over, so nothing claims it before the gateway ends it.
      const started = startOperation(ctx, auth, { serverId: f.server.id, type: "exec", command: `echo ran >> ${marker}`, timeoutSeconds: 30 });
      await expect(started).rejects.toThrow(ServiceUnavailableError);
      const op = await testPrisma().operation.findFirstOrThrow({ where: { serverId: f.server.id } });
      expect(op).toMatchObject({ status: "failed", error: "could not be queued: the job queue (Redis) was unreachable", dispatchedAt: null });
      // The add did reach Redis: the job is there although the gateway was told it failed.
      expect(await stack.gateway.queue.getJobState(op.id)).not.toBe("unknown");
      // Its runner connects; the dispatcher's next attempt finds the operation ended and drops the job.
      await stack.startRunner(f.runnerToken, f.server.id);
      await waitFor(async () => ["unknown", "completed"].includes(await stack.gateway.queue.getJobState(op.id)), 15_000, "the job to be dropped");
      expect(lines(marker)).toBe(0);
      expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } })).toMatchObject({ status: "failed", startedAt: null });
    } finally {
      await done();
    }
  });

  it("claimed by a dispatcher before the add's failure surfaced: answered as accepted, and it runs once", async () => {
    const f = await createFixture();
    await stack.startRunner(f.runnerToken, f.server.id);
    const marker = path.join(dir, "claimed");
    const { ctx, done } = await contextLosingTheReply(2500);
    try {
      const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
      const op = await startOperation(ctx, auth, { serverId: f.server.id, type: "exec", command: `echo ran >> ${marker}`, timeoutSeconds: 30 });
      expect(op.status).toBe("running");
      expect(await waitUntilEnded(op.id, 15_000)).toMatchObject({ status: "completed", exitCode: 0 });
      expect(lines(marker)).toBe(1);
    } finally {
      await done();
    }
  });

  /**
   * A runner for a new fixture, and an operation store that reaches PostgreSQL through a proxy that passes the
   * insert and swallows its answer, cutting every connection `holdMs` later (and refusing new ones).
   */
  async function insertAnswerLost(holdMs: number, dbOptions: Parameters<typeof createDb>[1]) {
    const f = await createFixture();
    await stack.startRunner(f.runnerToken, f.server.id);
    const pgUrl = new URL(stack.commonEnv().DATABASE_URL ?? "");
    const proxy = new ReplyDropProxy(Number(pgUrl.port || 5432));
    await proxy.listen();
    pgUrl.port = String(proxy.port);
    const db = createDb(pgUrl.toString(), dbOptions);
    proxy.arm("operation.insert", holdMs);
    const marker = path.join(dir, `insert-${f.server.id}`);
    const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
    const done = async () => {
      await db.close().catch(() => undefined);
      await proxy.close();
    };
    return { f, proxy, operations: db.operations, marker, auth, done };
  }

  /** insertAnswerLost, and a start of `command` by a gateway whose operation store is that one. */
  async function startWithInsertAnswerLost(holdMs: number, command: (marker: string) => string, dbOptions: Parameters<typeof createDb>[1]) {
    const lost = await insertAnswerLost(holdMs, dbOptions);
    const started = startOperation({ ...stack.gateway, operations: lost.operations }, lost.auth, { serverId: lost.f.server.id, type: "exec", command: command(lost.marker), timeoutSeconds: 30 });
    started.catch(() => undefined);
    return { ...lost, started };
  }

  it("an insert whose answer was lost, PostgreSQL answering again at once: 503 not started, the row that landed ended then, never run", async () => {
    // Only the insert goes through the proxy: ending the row and reading it back reach PostgreSQL directly.
    const { f, proxy, operations: lossy, marker, auth, done } = await insertAnswerLost(200, { max: 1, connectionTimeoutMillis: 1000 });
    try {
      const real = stack.gateway.operations;
      const operations = Object.assign(Object.create(Object.getPrototypeOf(real) as object) as typeof real, real, { insertWithAudit: lossy.insertWithAudit.bind(lossy) });
      const started = startOperation({ ...stack.gateway, operations }, auth, { serverId: f.server.id, type: "exec", command: `echo ran >> ${marker}`, timeoutSeconds: 30 });
      await expect(started).rejects.toThrow(OperationNotStartedError);
      await expect(started).rejects.toThrow(/did not confirm recording the operation \(.+\); it was not started and will not be/);
      expect(proxy.delivered).toBe(true);
      // Ended by the gateway itself, before it answered: PostgreSQL's word, not the Redis mark, makes it "not started".
      const op = await testPrisma().operation.findFirstOrThrow({ where: { serverId: f.server.id } });
      expect(op).toMatchObject({ status: "failed", error: FailureReason.NotConfirmed, dispatchedAt: null, startedAt: null });
      await new Promise((r) => setTimeout(r, 3000));
      expect(lines(marker)).toBe(0);
    } finally {
      await done();
    }
  });

  it("an insert whose answer was lost, PostgreSQL unreachable then: a 500 'may still run', never 'not started'; the row that landed is failed by the sweeper (the Redis mark), never run", async () => {
    // The path dies 200 ms after the insert went through: the gateway hears "Connection terminated" at once, and
    // can neither end nor read the row (reconnects are refused); only Redis takes the mark.
    const { f, proxy, started, marker, done } = await startWithInsertAnswerLost(200, (m) => `echo ran >> ${m}`, { max: 1, connectionTimeoutMillis: 1000 });
    try {
      await expect(started).rejects.toThrow(OutcomeUnknownError);
      await expect(started).rejects.toThrow(/did not confirm recording the operation \(.+\), and it could not be settled: it may still run/);
      expect(proxy.delivered).toBe(true);
      // It landed: nothing queued it, and the sweeper (which re-enqueues a row without a job) finds the mark and fails it.
      const op = await testPrisma().operation.findFirstOrThrow({ where: { serverId: f.server.id } });
      expect(await waitUntilEnded(op.id, 20_000)).toMatchObject({ status: "failed", error: FailureReason.NotConfirmed, dispatchedAt: null, startedAt: null });
      // Well past the sweeper's next passes and a delivery: the command never ran.
      await new Promise((r) => setTimeout(r, 3000));
      expect(lines(marker)).toBe(0);
    } finally {
      await done();
    }
  });

  it("an insert whose answer was lost, PostgreSQL unreachable then, and Redis losing the mark: the client is not told 'not started', its retry replays the 500, and the command runs once", async () => {
    const { f, proxy, operations, marker, done } = await insertAnswerLost(200, { max: 1, connectionTimeoutMillis: 1000 });
    try {
      // A gateway whose PostgreSQL path dies under the insert (its Idempotency-Key store, on another path, does not).
      const cut = request(createApp({ ...stack.gateway, operations }));
      const post = (to: ReturnType<typeof request>) =>
        to
          .post("/api/automation/v1/exec")
          .set("Authorization", `Bearer ${f.token}`)
          .set("Idempotency-Key", `lost-insert-${f.server.id}`)
          .send({ server_id: f.server.id, command: `echo ran >> ${marker}`, timeout_seconds: 30 });
      const first = await post(cut);
      expect(proxy.delivered).toBe(true);
      const op = await testPrisma().operation.findFirstOrThrow({ where: { serverId: f.server.id } });
      // Answered before the row was old enough for a sweeper: Redis then loses the mark (a restart without
      // persistence, a failover), so nothing stops the sweeper from taking the row for one whose job was lost.
      expect(await stack.redis.del(stack.keys.operationUnconfirmed(op.id))).toBe(1);
      // Not "not started" (a 503 releases the key, and the client's retry would run the command a second time).
      expect([first.status, first.body]).toEqual([500, { detail: expect.stringMatching(new RegExp(`\\(${op.id}\\), and it could not be settled: it may still run`)) }]);
      // The client's retry, at a gateway that reaches PostgreSQL: the same answer, kept with the key; nothing started.
      const retry = await post(stack.api());
      expect([retry.status, retry.body, retry.headers["idempotent-replayed"]]).toEqual([500, first.body, "true"]);
      expect(await testPrisma().operation.count({ where: { serverId: f.server.id } })).toBe(1);
      // The row that landed is queued by the sweeper and runs: once.
      expect(await waitUntilEnded(op.id, 20_000)).toMatchObject({ status: "completed", exitCode: 0 });
      await new Promise((r) => setTimeout(r, 3000));
      expect(lines(marker)).toBe(1);
    } finally {
      await done();
    }
  });

  it("an insert whose answer never came until its query timeout, taken meanwhile by the sweeper: answered as accepted, and it runs once", async () => {
    // The answer is swallowed on a connection that stays open (a half-open path): the gateway hears nothing until
    // its query timeout (statement timeout + 5 s), while new connections still get through.
    const { started, marker, done } = await startWithInsertAnswerLost(60_000, (m) => `echo ran >> ${m}`, { max: 2, connectionTimeoutMillis: 2000, statementTimeoutMs: 1000 });
    try {
      const op = await started;
      // Before its query timed out (6 s) the sweeper (REQUEUE_AFTER_SECONDS 2) had queued the row it found without a job.
      expect(op.dispatchedAt).not.toBeNull();
      expect(await waitUntilEnded(op.id, 20_000)).toMatchObject({ status: "completed", exitCode: 0 });
      await new Promise((r) => setTimeout(r, 2000));
      expect(lines(marker)).toBe(1);
    } finally {
      await done();
    }
  });
});
