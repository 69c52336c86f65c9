import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
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
