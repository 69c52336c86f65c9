import { createDb } from "@runbridge/db";
import type { AutomationAuth } from "../../apps/gateway/src/auth/locals";
import type { GatewayContext } from "../../apps/gateway/src/context";
import { ServiceUnavailableError } from "../../apps/gateway/src/errors";
import { failIfRunning, startOperation } from "../../apps/gateway/src/services/operations";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { TestStack } from "../helpers/stack";

/**
 * An operation whose job cannot be enqueued must not stay `running` forever:
 * it is ended as failed and the caller gets a 503.
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

  it("is ended as failed with the reason, and the caller gets a 503", async () => {
    const f = await createFixture();
    const auth = { tenantId: f.tenant.id, key: f.key, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
    const started = startOperation(context(), auth, { serverId: f.server.id, type: "exec", command: "true", timeoutSeconds: 60 });
    await expect(started).rejects.toThrow(ServiceUnavailableError);
    await expect(started).rejects.toThrow("The job queue is unreachable; the operation was not started. Retry shortly.");
    const rows = await testPrisma().operation.findMany({ where: { serverId: f.server.id } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "failed", error: "could not be queued: the job queue (Redis) was unreachable" });
    expect(rows[0]?.completedAt).toBeInstanceOf(Date);
  });

  it("never overwrites an operation that has already ended", async () => {
    const f = await createFixture();
    const done = await createOperation(f.tenant.id, f.server.id, { status: "completed", exitCode: 0, completedAt: new Date() });
    await failIfRunning(context(), done.id, "should not land");
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: done.id } });
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null });
  });

  it("is best effort: with the database gone it does not throw (the caller answers 503 anyway)", async () => {
    const gone = createDb("postgresql://postgres@127.0.0.1:1/nothing", { max: 1, connectionTimeoutMillis: 500 });
    try {
      const ctx = { ...context(), prisma: gone.prisma } as GatewayContext;
      await expect(failIfRunning(ctx, "9b2f6c1e-1f0a-4d6e-9a57-3c1b8f0e2d11", "why")).resolves.toBeUndefined();
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
});
