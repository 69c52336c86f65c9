import type { GatewayContext } from "../../apps/gateway/src/context";
import type { AutomationAuth } from "../../apps/gateway/src/auth/locals";
import { ServiceUnavailableError } from "../../apps/gateway/src/errors";
import { failIfRunning, startOperation } from "../../apps/gateway/src/services/operations";

/** Ending an operation that will never be delivered: one write, shared by the enqueue and the deploy paths. */
describe("failIfRunning", () => {
  const operationId = "9b2f6c1e-1f0a-4d6e-9a57-3c1b8f0e2d11";

  function fakeContext(updateMany: jest.Mock, queueAdd: jest.Mock = jest.fn()) {
    const row = { id: operationId, serverId: "s1", type: "exec", runId: null, status: "running" };
    return {
      prisma: { operation: { updateMany } },
      operations: { insertWithAudit: jest.fn().mockResolvedValue(row) },
      queue: { add: queueAdd },
      logger: { error: jest.fn(), info: jest.fn() },
      config: { RUNNER_DELIVERY_TIMEOUT_SECONDS: 30, REDIS_PREFIX: "rb" },
      sealer: { seal: jest.fn() },
    } as unknown as GatewayContext;
  }

  it("fails the operation only while it is still running", async () => {
    const updateMany = jest.fn().mockResolvedValue({ count: 1 });
    await failIfRunning(fakeContext(updateMany), operationId, "why");
    expect(updateMany).toHaveBeenCalledWith({
      where: { id: operationId, status: "running" },
      data: { status: "failed", error: "why", completedAt: expect.any(Date) as Date },
    });
  });

  it("is best effort: a failed write does not throw", async () => {
    const updateMany = jest.fn().mockRejectedValue(new Error("db down"));
    await expect(failIfRunning(fakeContext(updateMany), operationId, "why")).resolves.toBeUndefined();
  });

  it("is what startOperation does when the enqueue fails, then it answers 503", async () => {
    const updateMany = jest.fn().mockResolvedValue({ count: 1 });
    const ctx = fakeContext(updateMany, jest.fn().mockRejectedValue(new Error("redis down")));
    const auth = { tenantId: "t1", key: { id: "k1" }, clientIp: "127.0.0.1" } as unknown as AutomationAuth;
    const started = startOperation(ctx, auth, { serverId: "s1", type: "exec", command: "true", timeoutSeconds: 60 });
    await expect(started).rejects.toThrow(ServiceUnavailableError);
    await expect(started).rejects.toThrow("The job queue is unreachable; the operation was not started. Retry shortly.");
    expect(updateMany).toHaveBeenCalledWith({
      where: { id: operationId, status: "running" },
      data: { status: "failed", error: "could not be queued: the job queue (Redis) was unreachable", completedAt: expect.any(Date) as Date },
    });
  });
});
