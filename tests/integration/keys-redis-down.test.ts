import { spawn } from "node:child_process";
import request from "supertest";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { TEST_ENCRYPTION_KEY, freshPrefix, testDatabaseUrl } from "../helpers/env";
import { createAutomationKey, createFixture, createOperation } from "../helpers/factories";
import { Proc, freePort, startNode } from "../helpers/processes";

/**
 * The documented behaviour with Redis unreachable (docs/keys.md): a gateway
 * keeps authenticating from PostgreSQL and keeps enforcing every key's limit
 * on its own, in memory. Uses a private Redis process it can kill.
 */
describe("automation keys while Redis is unreachable", () => {
  let redis: Proc;
  let gateway: Proc;
  let url = "";
  let fx: Awaited<ReturnType<typeof createFixture>>;
  let opId = "";

  beforeAll(async () => {
    const redisPort = await freePort();
    redis = new Proc(spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "pipe"] }));
    await redis.waitForOutput(/Ready to accept connections/);
    const port = await freePort();
    gateway = startNode("apps/gateway/dist/main.js", {
      DATABASE_URL: testDatabaseUrl(),
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      REDIS_PREFIX: freshPrefix("rdown"),
      RUNBRIDGE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
    });
    url = `http://127.0.0.1:${port}`;
    await gateway.waitForOutput(/gateway listening/);
    fx = await createFixture();
    opId = (await createOperation(fx.tenant.id, fx.server.id)).id;
  });
  afterAll(async () => {
    await gateway?.stop();
    await redis?.stop("SIGKILL");
    await closeTestPrisma();
  });

  const poll = (token: string) => request(url).get(`/api/automation/v1/operations/${opId}`).set("Authorization", `Bearer ${token}`);

  it("keeps authenticating from PostgreSQL and enforces each key's limit per gateway in memory", async () => {
    const limited = await createAutomationKey(fx.tenant.id, { rateLimit: 3 });
    const revokeLater = await createAutomationKey(fx.tenant.id);
    const up = await poll(limited.token);
    expect(up.status).toBe(200);
    expect(up.headers["ratelimit-remaining"]).toBe("2");
    expect((await poll(revokeLater.token)).status).toBe(200);

    await redis.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));

    // A change made while the key-change channel is down is still seen: the cache is not trusted without it.
    await testPrisma().automationKey.update({ where: { id: revokeLater.key.id }, data: { revokedAt: new Date() } });
    expect((await poll(revokeLater.token)).status).toBe(401);

    // The in-memory limiter starts its own count of 3 in this process.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await poll(limited.token)).status);
    expect(statuses).toEqual([200, 200, 200]);
    const over = await poll(limited.token);
    expect(over.status).toBe(429);
    expect(over.body.detail).toMatch(/Rate limit of 3 requests per minute/);
    expect(Number(over.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(Number(over.headers["retry-after"])).toBeLessThanOrEqual(60);
    for (let i = 0; i < 3; i++) expect((await poll(limited.token)).status).toBe(429);
    // Still one audit event for the window (de-duplicated in memory).
    expect(await testPrisma().auditEvent.count({ where: { automationKeyId: limited.key.id, type: "rate_limited" } })).toBe(1);
  });
});
