import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** GET /api/v1/audit-events: what the trail holds for a CI run, filters, pagination, tenant isolation. */
describe("audit trail", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  let other: Fixture;
  const canary = `canary-${Date.now()}-k3y`;
  const runId = `github-run-${Date.now()}`;
  const runContext = { provider: "github_actions", repository: "myorg/myapp", workflow: "deploy", trigger: "push", actor: "octocat", sha: "abc123def", ref: "refs/heads/main" };
  let opId = "";

  const audit = (apiKey: string, query: string) => stack.api().get(`/api/v1/audit-events${query}`).set("Authorization", `Bearer ${apiKey}`);

  beforeAll(async () => {
    ({ stack, fx } = suite);
    other = await createFixture();
    // The other tenant has a trail of its own (key.created).
    const theirKey = await stack.api().post("/api/v1/automation-keys").set("Authorization", `Bearer ${other.apiKey}`).send({ name: "theirs" });
    expect(theirKey.status).toBe(201);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: 'echo "deploying"', env: { DB_PASSWORD: canary, API_TOKEN: `${canary}-2` }, run_id: runId, run_context: runContext });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
    opId = res.body.operation_id;
    // operation.finished is written by the dispatcher in the same transaction as the result.
    await waitFor(async () => (await testPrisma().auditEvent.count({ where: { operationId: opId } })) === 2, 10_000, "both operation events");
  });

  it("records an operation with command, server, key, client IP, CI context and env key names, and no env value", async () => {
    const res = await audit(fx.apiKey, `?run_id=${runId}`);
    expect(res.status).toBe(200);
    expect(res.body.data.map((e: { type: string }) => e.type)).toEqual(["operation.finished", "operation.created"]);
    const [finished, created] = res.body.data;
    expect(created).toMatchObject({
      type: "operation.created",
      automation_key_id: fx.key.id,
      operation_id: opId,
      server_id: fx.server.id,
      run_id: runId,
      client_ip: "127.0.0.1",
      data: { operation_type: "exec", command: 'echo "deploying"', env_keys: ["DB_PASSWORD", "API_TOKEN"], run_context: runContext },
    });
    // The result; stdout/stderr themselves are read from the operation (operation_id is the reference).
    expect(finished).toMatchObject({ operation_id: opId, automation_key_id: fx.key.id, data: { status: "completed", exit_code: 0, stdout_bytes: 10 } });
    expect(JSON.stringify(res.body)).not.toContain(canary);
    // Nor anywhere in the stored trail.
    const rows = await testPrisma().$queryRaw<{ t: string }[]>`SELECT row_to_json(a)::text AS t FROM audit_events a WHERE tenant_id = ${fx.tenant.id}::uuid`;
    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const r of rows) expect(r.t).not.toContain(canary);
  });

  it("filters by automation key, run and type", async () => {
    const second = await createAutomationKey(fx.tenant.id);
    await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${second.token}`).send({ server_id: fx.server.id, command: "true", run_id: "another-run" });
    const byKey = await audit(fx.apiKey, `?automation_key_id=${second.key.id}`);
    expect(byKey.body.data.length).toBeGreaterThanOrEqual(1);
    for (const e of byKey.body.data) expect(e.automation_key_id).toBe(second.key.id);
    const byType = await audit(fx.apiKey, `?type=operation.created&automation_key_id=${fx.key.id}`);
    expect(byType.body.data.map((e: { operation_id: string }) => e.operation_id)).toEqual([opId]);
    const combined = await audit(fx.apiKey, `?run_id=another-run&automation_key_id=${fx.key.id}`);
    expect(combined.body.data).toEqual([]);
    expect((await audit(fx.apiKey, "?type=no.such.type")).body.data).toEqual([]);
  });

  it("pages newest first with an opaque cursor, visiting every event once", async () => {
    const all = await audit(fx.apiKey, "?limit=200");
    const ids: string[] = all.body.data.map((e: { id: string }) => e.id);
    expect(ids.length).toBeGreaterThanOrEqual(4);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { data: { id: string; created_at: string }[]; next_cursor: string | null } } = await audit(fx.apiKey, `?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.body.data.length).toBeLessThanOrEqual(1);
      seen.push(...page.body.data.map((e) => e.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(ids);
    const times = all.body.data.map((e: { created_at: string }) => Date.parse(e.created_at));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
  });

  it.each([
    ["?cursor=bm9wZQ", /"cursor" is not a cursor this API returned/],
    // Shaped like one, with an id of 36 dashes (PostgreSQL could not read it as a uuid: it was a 500).
    [`?cursor=${Buffer.from(JSON.stringify(["2026-01-01T00:00:00.000Z", "-".repeat(36)])).toString("base64url")}`, /"cursor" is not a cursor this API returned/],
    ["?limit=0", /"limit" must be greater than or equal to 1/],
    ["?limit=201", /"limit" must be less than or equal to 200/],
    ["?automation_key_id=xyz", /"automation_key_id" must be a valid GUID/],
    ["?type=DROP%20TABLE", /"type" is an event type/],
    ["?colour=blue", /"colour" is not allowed/],
  ])("refuses the query %s with 422 naming the parameter", async (query, detail) => {
    const res = await audit(fx.apiKey, query);
    expect(res.status).toBe(422);
    expect(res.body).toEqual({ detail: expect.stringMatching(detail) });
  });

  it("shows a tenant only its own events, whatever ids it filters by", async () => {
    const theirs = await audit(other.apiKey, "?limit=200");
    expect(theirs.status).toBe(200);
    expect(theirs.body.data.map((e: { type: string }) => e.type)).toEqual(["key.created"]);
    for (const e of theirs.body.data) expect(e.automation_key_id === fx.key.id || e.operation_id === opId).toBe(false);
    expect((await audit(other.apiKey, `?run_id=${runId}`)).body.data).toEqual([]);
    expect((await audit(other.apiKey, `?automation_key_id=${fx.key.id}`)).body.data).toEqual([]);
    expect((await audit(other.apiKey, `?operation_id=${opId}`)).body.data).toEqual([]);
    // The automation key cannot read the trail at all: it is a management API.
    expect((await audit(fx.token, "")).status).toBe(401);
  });
});
