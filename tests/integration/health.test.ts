import { execFileSync } from "node:child_process";
import path from "node:path";
import request from "supertest";
import { PrivatePostgres, PrivateRedis } from "../helpers/private-services";
import { ROOT, waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/**
 * Liveness and readiness of the gateway and a dispatcher, against a Redis and
 * a PostgreSQL of this file's own, which the tests stop and start again.
 */
describe("health and readiness", () => {
  let redis: PrivateRedis;
  let pg: PrivatePostgres;
  let stack: TestStack;
  let dispatcherUrl: string;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    pg = await PrivatePostgres.start();
    // A real schema, so the services behave as in production while it is up.
    execFileSync(path.join(ROOT, "node_modules/.bin/prisma"), ["migrate", "deploy"], { cwd: ROOT, env: { ...process.env, DATABASE_URL: pg.url }, stdio: "pipe" });
    stack = await TestStack.start({ redisUrl: redis.url, databaseUrl: pg.url });
    dispatcherUrl = `http://127.0.0.1:${stack.dispatcherPorts[0]}`;
  }, 120_000);

  afterAll(async () => {
    redis.up(); // the stack's cleanup talks to Redis
    await stack?.stop();
    redis?.down();
    pg?.destroy();
  });

  const targets = () => [
    { name: "gateway", agent: () => stack.api() },
    { name: "dispatcher", agent: () => request(dispatcherUrl) },
  ];

  const readyStatus = async (agent: () => ReturnType<typeof request>) => (await agent().get("/readyz")).status;

  it("answers /healthz and /readyz with 200 while PostgreSQL and Redis are up", async () => {
    for (const t of targets()) {
      const live = await t.agent().get("/healthz");
      expect({ target: t.name, status: live.status, body: live.body }).toEqual({ target: t.name, status: 200, body: { status: "ok" } });
      const ready = await t.agent().get("/readyz");
      expect({ target: t.name, status: ready.status }).toEqual({ target: t.name, status: 200 });
      expect(ready.body).toMatchObject({ status: "ok", checks: { postgres: "ok", redis: "ok" } });
    }
  });

  it("fails /readyz with 503 naming Redis while Redis is down, stays live, and recovers", async () => {
    redis.down();
    try {
      for (const t of targets()) {
        const ready = await waitFor(async () => {
          const r = await t.agent().get("/readyz");
          return r.status === 503 ? r : null;
        }, 15_000, `${t.name} readiness to fail`);
        expect(ready.body).toMatchObject({ status: "unavailable", detail: expect.any(String), checks: { postgres: "ok", redis: "error" } });
        expect((await t.agent().get("/healthz")).status).toBe(200);
      }
    } finally {
      redis.up();
    }
    for (const t of targets()) await waitFor(async () => (await readyStatus(t.agent)) === 200, 20_000, `${t.name} readiness after Redis is back`);
  });

  it("fails /readyz with 503 naming PostgreSQL while PostgreSQL is down, stays live, and recovers", async () => {
    pg.down();
    try {
      for (const t of targets()) {
        const ready = await waitFor(async () => {
          const r = await t.agent().get("/readyz");
          return r.status === 503 ? r : null;
        }, 15_000, `${t.name} readiness to fail`);
        expect(ready.body).toMatchObject({ status: "unavailable", detail: expect.any(String), checks: { postgres: "error", redis: "ok" } });
        expect((await t.agent().get("/healthz")).status).toBe(200);
      }
    } finally {
      pg.up();
    }
    for (const t of targets()) await waitFor(async () => (await readyStatus(t.agent)) === 200, 20_000, `${t.name} readiness after PostgreSQL is back`);
  });

  it("answers unknown dispatcher paths with a 404 {detail}", async () => {
    const res = await request(dispatcherUrl).get("/nope");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ detail: expect.stringContaining("/nope") });
  });
});
