import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import express from "express";
import request from "supertest";
import { OutcomeUnknownError, ValidationError } from "../../apps/gateway/src/errors";
import { errorHandler } from "../../apps/gateway/src/middleware/error-handler";
import { idempotencyMiddleware } from "../../apps/gateway/src/middleware/idempotency";
import { testPrisma } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import { createAutomationKey, createServer } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** Idempotency-Key on Automation API POSTs: a retried request runs once. */
describe("Idempotency-Key", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  let dir: string;

  beforeAll(() => {
    ({ stack, fx } = suite);
    dir = mkdtempSync(path.join(tmpdir(), "rb-idem-"));
  });

  const post = (key: string | null, body: Record<string, unknown>, token = fx.token) => {
    const r = stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`);
    if (key !== null) r.set("Idempotency-Key", key);
    return r.send(body);
  };
  /**
   * The gateway's own Idempotency-Key middleware and error handler (with this key's authentication) around
   * routes that answer as `routes` say: the answers whose conditions cannot be staged through the real stack.
   */
  const guardedApp = (routes: Record<string, () => never>) => {
    const app = express();
    app.use(express.json());
    app.use((_req, res, next) => {
      res.locals.auth = { kind: "automation", tenantId: fx.tenant.id, key: fx.key, clientIp: "127.0.0.1" };
      next();
    });
    for (const [route, handler] of Object.entries(routes)) app.post(route, idempotencyMiddleware(stack.gateway), handler);
    app.use(errorHandler(stack.gateway.logger));
    return app;
  };
  /** Each run of the command appends a line: the number of lines is the number of executions. */
  const runs = (file: string) => {
    try {
      return readFileSync(file, "utf8").split("\n").filter(Boolean).length;
    } catch {
      return 0;
    }
  };

  it("runs concurrent retries with the same key and body once, and every one gets the original response", async () => {
    const file = path.join(dir, "concurrent");
    const body = { server_id: fx.server.id, command: `echo run >> ${file}; sleep 1; echo done`, run_id: "ci-run-1" };
    const key = `deploy-${Date.now()}`;
    const replies = await Promise.all([post(key, body), post(key, body), post(key, body)]);
    for (const r of replies) expect(r.status).toBe(200);
    const ids = new Set(replies.map((r) => r.body.operation_id as string));
    expect(ids.size).toBe(1);
    expect(replies.map((r) => r.body)).toEqual(replies.map(() => ({ ...replies[0]?.body })));
    expect(replies[0]?.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "done\n" });
    expect(replies.filter((r) => r.headers["idempotent-replayed"] === "true")).toHaveLength(2);
    expect(runs(file)).toBe(1);

    // A retry after it finished (same body, keys in another order) replays it too.
    const later = await post(key, { run_id: "ci-run-1", command: body.command, server_id: fx.server.id });
    expect(later.status).toBe(200);
    expect(later.headers["idempotent-replayed"]).toBe("true");
    expect(later.body).toEqual(replies[0]?.body);
    expect(runs(file)).toBe(1);
    expect(await testPrisma().operation.count({ where: { runId: "ci-run-1", tenantId: fx.tenant.id } })).toBe(1);
  });

  it("refuses the same key with a different body or endpoint (422) without running anything", async () => {
    const file = path.join(dir, "different");
    const key = `k-${Date.now()}`;
    const first = await post(key, { server_id: fx.server.id, command: `echo a >> ${file}` });
    expect(first.status).toBe(200);
    const changed = await post(key, { server_id: fx.server.id, command: `echo b >> ${file}` });
    expect(changed.status).toBe(422);
    expect(changed.body).toEqual({ detail: expect.stringMatching(/Idempotency-Key "k-\d+" was already used with a different request/) });
    const otherEndpoint = await stack
      .api()
      .post("/api/automation/v1/restart")
      .set("Authorization", `Bearer ${fx.token}`)
      .set("Idempotency-Key", key)
      .send({ server_id: fx.server.id, command: `echo a >> ${file}` });
    expect(otherEndpoint.status).toBe(422);
    expect(otherEndpoint.body.detail).toMatch(/different request/);
    expect(readFileSync(file, "utf8")).toBe("a\n");
  });

  it("does not keep a refused request: after the runner comes online, the same retry runs", async () => {
    const { server, runnerToken } = await createServer(fx.tenant.id);
    const file = path.join(dir, "offline");
    const body = { server_id: server.id, command: `echo x >> ${file}; echo ok` };
    const key = `offline-${Date.now()}`;
    const refused = await post(key, body);
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toMatch(/no connected runner/);
    await stack.startRunner(runnerToken, server.id);
    const retried = await post(key, body);
    expect(retried.status).toBe(200);
    expect(retried.headers["idempotent-replayed"]).toBeUndefined();
    expect(retried.body).toMatchObject({ status: "completed", stdout: "ok\n" });
    const again = await post(key, body);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(runs(file)).toBe(1);
  });

  it("scopes keys per automation key, and requests without the header are not deduplicated", async () => {
    const file = path.join(dir, "scoped");
    const body = { server_id: fx.server.id, command: `echo y >> ${file}` };
    const { token: second } = await createAutomationKey(fx.tenant.id);
    const key = `shared-${Date.now()}`;
    const a = await post(key, body);
    const b = await post(key, body, second);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body.operation_id).not.toBe(b.body.operation_id);
    await post(null, body);
    await post(null, body);
    expect(runs(file)).toBe(4);
  });

  it("stores no request body: only an HMAC of it, and the response", async () => {
    const canary = `canary-idem-${Date.now()}`;
    const key = `secret-${Date.now()}`;
    const res = await post(key, { server_id: fx.server.id, command: "echo \"$TOKEN\"", env: { TOKEN: canary } });
    expect(res.body).toMatchObject({ status: "completed", stdout: "***\n" });
    const row = await testPrisma().idempotencyRecord.findUniqueOrThrow({
      where: { automationKeyId_idempotencyKey: { automationKeyId: fx.key.id, idempotencyKey: key } },
    });
    expect(row.state).toBe("completed");
    expect(row.requestHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(canary);
    expect(Math.abs(row.expiresAt.getTime() - row.createdAt.getTime() - 24 * 3600 * 1000)).toBeLessThan(5000);
  });

  it("does not replay an answer to a key narrowed since away from the operation's server (403, as reading it would)", async () => {
    const own = await createAutomationKey(fx.tenant.id, { allowedServerIds: [fx.server.id] });
    const key = `narrowed-${Date.now()}`;
    const body = { server_id: fx.server.id, command: "echo secret-output" };
    const first = await post(key, body, own.token);
    expect(first.body).toMatchObject({ status: "completed", stdout: "secret-output\n" });
    const elsewhere = await createServer(fx.tenant.id);
    await stack.api().patch(`/api/v1/automation-keys/${own.key.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ allowed_server_ids: [elsewhere.server.id] });
    const replay = await post(key, body, own.token);
    expect(replay.status).toBe(403);
    expect(replay.body.detail).toMatch(/not in this API key's allowed servers/);
    expect(replay.headers["idempotent-replayed"]).toBeUndefined();
  });

  it("keeps the key with a 500 whose operation may run, so a retry gets that answer again and nothing runs twice; other errors release it", async () => {
    // The gateway's own middleware and error handler around a route that answers as startOperation does when an
    // insert went unconfirmed and could not be settled (PostgreSQL and Redis failing at once: not staged here).
    let calls = 0;
    const app = guardedApp({
      "/unsure": () => {
        calls++;
        throw new OutcomeUnknownError("PostgreSQL did not confirm recording the operation: it may still run");
      },
      "/refused": () => {
        calls++;
        throw new ValidationError("refused");
      },
    });

    const key = `unsure-${Date.now()}`;
    const first = await request(app).post("/unsure").set("Idempotency-Key", key).send({ n: 1 });
    expect([first.status, first.body]).toEqual([500, { detail: expect.stringMatching(/may still run/) }]);
    const retry = await request(app).post("/unsure").set("Idempotency-Key", key).send({ n: 1 });
    expect([retry.status, retry.body, retry.headers["idempotent-replayed"]]).toEqual([500, first.body, "true"]);
    expect(calls).toBe(1);

    const other = `refused-${Date.now()}`;
    for (let i = 0; i < 2; i++) expect((await request(app).post("/refused").set("Idempotency-Key", other).send({ n: 1 })).status).toBe(422);
    expect(calls).toBe(3);
  });

  it("releases a refused request's key later when PostgreSQL failed the release, rather than leave it in progress for a day", async () => {
    let calls = 0;
    const app = guardedApp({
      "/refused": () => {
        calls++;
        throw new ValidationError("refused");
      },
    });
    // PostgreSQL refuses to delete this key's record for a while (as during a failover, for this one row).
    const key = `release-fails-${Date.now()}`;
    const db = testPrisma();
    await db.$executeRawUnsafe(`CREATE OR REPLACE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF OLD.idempotency_key LIKE 'release-fails-%' THEN RAISE EXCEPTION 'release refused by the test'; END IF; RETURN OLD; END $$`);
    await db.$executeRawUnsafe("CREATE TRIGGER refuse_release BEFORE DELETE ON idempotency_records FOR EACH ROW EXECUTE FUNCTION refuse_release()");
    try {
      expect((await request(app).post("/refused").set("Idempotency-Key", key).send({ n: 1 })).status).toBe(422);
      expect(await db.idempotencyRecord.count({ where: { idempotencyKey: key } })).toBe(1);
    } finally {
      await db.$executeRawUnsafe("DROP TRIGGER refuse_release ON idempotency_records");
    }
    // Tried again in the background (after 1 s, then 2 s...): the key is free, and a retry is run.
    await waitFor(async () => (await db.idempotencyRecord.count({ where: { idempotencyKey: key } })) === 0, 10_000, "the key to be released");
    expect((await request(app).post("/refused").set("Idempotency-Key", key).send({ n: 1 })).status).toBe(422);
    expect(calls).toBe(2);
  });

  it("rejects a malformed Idempotency-Key header", async () => {
    for (const bad of ["has space", "x".repeat(256), "é"]) {
      const res = await stack
        .api()
        .post("/api/automation/v1/exec")
        .set("Authorization", `Bearer ${fx.token}`)
        .set("Idempotency-Key", encodeURI(bad) === bad ? bad : Buffer.from(bad, "utf8").toString("latin1"))
        .send({ server_id: fx.server.id, command: "true" });
      expect(res.status).toBe(422);
      expect(res.body.detail).toMatch(/Idempotency-Key/);
    }
  });
});
