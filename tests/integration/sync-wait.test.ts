import { holdRowLock, testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * A synchronous exec holds its request while the operation runs. These run
 * with no dispatcher, so an accepted operation stays queued and the request
 * stays held for as long as a test needs.
 */
describe("synchronous wait", () => {
  // One pooled connection, so a test can make the gateway's reads wait for it.
  const suite = useStack({ dispatchers: 0, gateway: { DB_POOL_SIZE: "1" } });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  /** A fixture whose runner looks connected (presence as a dispatcher writes it), though none is. */
  async function connectedFixture() {
    const fx = await createFixture();
    await stack.redis.set(stack.keys.runnerPresence(fx.server.id), "test/none", "EX", 120);
    return fx;
  }

  /** An exec of `true` whose client gives up after `ms`: "client gave up", or "answered" if it came first. */
  const execGivingUpAfter = (fx: { token: string; server: { id: string } }, ms: number) =>
    stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: "true", timeout_seconds: 60 })
      .timeout(ms)
      .then(
        () => "answered",
        () => "client gave up",
      );

  it("stops polling as soon as the client goes away", async () => {
    const fx = await connectedFixture();
    const held = execGivingUpAfter(fx, 1500);
    await waitFor(async () => stack.gateway.waiter.waiting === 1, 5_000, "the request to be held");
    expect(await held).toBe("client gave up");
    await waitFor(async () => stack.gateway.waiter.waiting === 0, 3_000, "the wait loop to end with its client");
    expect(stack.gateway.waiter.pending).toBe(0);
  });

  it("does not wait at all for a client that went away while its operation was being started", async () => {
    const fx = await connectedFixture();
    // The server's row held, so the exec waits at its insert (the foreign key) while its client gives up.
    const lock = holdRowLock("servers", fx.server.id);
    const held = execGivingUpAfter(fx, 500);
    await lock.blocked();
    expect(await held).toBe("client gave up");
    await lock.finish(async () => undefined);
    // Accepted all the same (nothing can take it back once the insert lands), and then not held for anyone.
    await waitFor(async () => (await testPrisma().operation.count({ where: { serverId: fx.server.id } })) === 1, 5_000, "the operation to be recorded");
    await new Promise((r) => setTimeout(r, 500));
    expect(stack.gateway.waiter.waiting).toBe(0);
    expect(stack.gateway.waiter.pending).toBe(0);
  });

  it("answers an accepted operation as running when it cannot read it back, so a retry with the same Idempotency-Key never runs it twice", async () => {
    const fx = await connectedFixture();
    const post = () =>
      stack
        .api()
        .post("/api/automation/v1/exec")
        .set("Authorization", `Bearer ${fx.token}`)
        .set("Idempotency-Key", "held-then-unreadable")
        .send({ server_id: fx.server.id, command: "echo once", timeout_seconds: 30 });
    const first = post().then((r) => r);
    await waitFor(async () => stack.gateway.waiter.waiting === 1, 5_000, "the request to be held");
    // Hold the gateway's only connection past its 3 s connect timeout: its next poll fails.
    const holding = stack.gateway.prisma.$transaction(() => new Promise((r) => setTimeout(r, 6_000)), { timeout: 15_000, maxWait: 5_000 });
    const answer = await first;
    await holding;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ operation_id: expect.any(String), status: "running" });
    const retry = await post();
    expect(retry.body.operation_id).toBe(answer.body.operation_id);
    expect(await testPrisma().operation.count({ where: { serverId: fx.server.id } })).toBe(1);
  });
});
