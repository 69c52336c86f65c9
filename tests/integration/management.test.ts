import { hashToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createTenant } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** The management API the dashboard and later issues build on: servers, keys, operations. */
describe("management API", () => {
  const suite = useStack();
  let stack: TestStack;
  let admin: Awaited<ReturnType<typeof createTenant>>;
  const auth = () => ({ Authorization: `Bearer ${admin.apiKey}` });

  beforeAll(async () => {
    ({ stack } = suite);
    admin = await createTenant();
  });

  it("refuses missing, invalid and automation keys with 401 {detail}", async () => {
    expect((await stack.api().get("/api/v1/servers")).status).toBe(401);
    const bad = await stack.api().get("/api/v1/servers").set("Authorization", "Bearer rbk_nope");
    expect(bad.status).toBe(401);
    expect(bad.body).toEqual({ detail: "Invalid API key" });
  });

  it("creates a server, shows its runner token once and stores only its hash", async () => {
    const res = await stack.api().post("/api/v1/servers").set(auth()).send({ name: "prod-1" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: expect.any(String), name: "prod-1", runner_connected: false, runner_token: expect.stringMatching(/^rbr_/) });
    const row = await testPrisma().server.findUniqueOrThrow({ where: { id: res.body.id } });
    expect(row.runnerTokenHash).toBe(hashToken(res.body.runner_token));
    const list = await stack.api().get("/api/v1/servers").set(auth());
    const listed = list.body.data.find((s: { id: string }) => s.id === res.body.id);
    expect(listed).toMatchObject({ name: "prod-1", runner_connected: false });
    expect(listed.runner_token).toBeUndefined();
    expect((await stack.api().post("/api/v1/servers").set(auth()).send({})).status).toBe(422);
  });

  it("audits a server's creation as server.created: who created it and the name, never the token", async () => {
    const res = await stack.api().post("/api/v1/servers").set(auth()).send({ name: "audited-1" });
    expect(res.status).toBe(201);
    const key = await testPrisma().apiKey.findUniqueOrThrow({ where: { keyHash: hashToken(admin.apiKey) } });
    const audit = await stack.api().get("/api/v1/audit-events").query({ server_id: res.body.id }).set(auth());
    expect(audit.status).toBe(200);
    expect(audit.body.data).toHaveLength(1);
    expect(audit.body.data[0]).toMatchObject({
      type: "server.created",
      server_id: res.body.id,
      automation_key_id: null,
      operation_id: null,
      client_ip: expect.stringMatching(/127\.0\.0\.1/),
      data: { server_name: "audited-1", by_api_key_id: key.id },
    });
    // Neither the runner token nor its hash is in the audit trail.
    const stored = await testPrisma().auditEvent.findMany({ where: { serverId: res.body.id } });
    for (const text of [JSON.stringify(audit.body), JSON.stringify(stored)]) {
      expect(text).not.toContain(res.body.runner_token);
      expect(text).not.toContain(hashToken(res.body.runner_token));
      expect(text).not.toMatch(/rbr_/);
    }
  });

  it("shows runner_connected once the server's runner connects", async () => {
    const created = await stack.api().post("/api/v1/servers").set(auth()).send({ name: "with-runner" });
    await stack.startRunner(created.body.runner_token, created.body.id);
    const one = await stack.api().get(`/api/v1/servers/${created.body.id}`).set(auth());
    expect(one.body).toMatchObject({ runner_connected: true, last_seen_at: expect.any(String) });
  });

  it("creates an automation key shown once, which works until it is revoked", async () => {
    const server = await stack.api().post("/api/v1/servers").set(auth()).send({ name: "keyed" });
    await stack.startRunner(server.body.runner_token, server.body.id);
    const created = await stack.api().post("/api/v1/automation-keys").set(auth()).send({ name: "ci", allowed_operations: ["exec"], allowed_server_ids: [server.body.id] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "ci", key: expect.stringMatching(/^rca_[0-9A-Za-z]{42}$/), status: "active", rate_limit: 100, allowed_operations: ["exec"] });
    expect(created.body.prefix).toBe(created.body.key.slice(0, 12));
    const list = await stack.api().get("/api/v1/automation-keys").set(auth());
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);

    const exec = () =>
      stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${created.body.key}`).send({ server_id: server.body.id, command: "echo ok", run_id: "run-7" });
    const ok = await exec();
    expect(ok.body).toMatchObject({ status: "completed", stdout: "ok\n" });

    const revoked = await stack.api().delete(`/api/v1/automation-keys/${created.body.id}`).set(auth());
    expect(revoked.status).toBe(200);
    expect(revoked.body.status).toBe("revoked");
    const refused = await exec();
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toMatch(/revoked/);
  });

  it("lists operations newest first with filters and a cursor, within the tenant only", async () => {
    const server = await stack.api().post("/api/v1/servers").set(auth()).send({ name: "lister" });
    await stack.startRunner(server.body.runner_token, server.body.id);
    const key = await stack.api().post("/api/v1/automation-keys").set(auth()).send({ name: "lister-key" });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await stack
        .api()
        .post("/api/automation/v1/exec")
        .set("Authorization", `Bearer ${key.body.key}`)
        .send({ server_id: server.body.id, command: i === 4 ? "exit 1" : `echo ${i}`, run_id: i < 3 ? "run-a" : "run-b" });
      ids.push(r.body.operation_id);
    }
    const page1 = await stack.api().get(`/api/v1/operations?automation_key_id=${key.body.id}&limit=2`).set(auth());
    expect(page1.status).toBe(200);
    expect(page1.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual([ids[4], ids[3]]);
    const page2 = await stack.api().get(`/api/v1/operations?automation_key_id=${key.body.id}&limit=2&cursor=${page1.body.next_cursor}`).set(auth());
    expect(page2.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual([ids[2], ids[1]]);
    const page3 = await stack.api().get(`/api/v1/operations?automation_key_id=${key.body.id}&limit=2&cursor=${page2.body.next_cursor}`).set(auth());
    expect(page3.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual([ids[0]]);
    expect(page3.body.next_cursor).toBeNull();

    const runA = await stack.api().get("/api/v1/operations?run_id=run-a").set(auth());
    expect(runA.body.data).toHaveLength(3);
    const byServer = await stack.api().get(`/api/v1/operations?server_id=${server.body.id}&status=completed`).set(auth());
    expect(byServer.body.data).toHaveLength(5);
    expect(byServer.body.data[0]).toMatchObject({ server_name: "lister", result: { exit_code: 1 } });
    const keyList = await stack.api().get("/api/v1/automation-keys").set(auth());
    expect(keyList.body.data.find((k: { id: string }) => k.id === key.body.id).operation_count).toBe(5);

    expect((await stack.api().get("/api/v1/operations?status=bogus").set(auth())).status).toBe(422);
    expect((await stack.api().get("/api/v1/operations?cursor=garbage").set(auth())).status).toBe(422);

    // Another tenant sees none of it.
    const other = await createTenant();
    const theirs = await stack.api().get("/api/v1/operations?run_id=run-a").set("Authorization", `Bearer ${other.apiKey}`);
    expect(theirs.body.data).toEqual([]);
    const theirKeys = await stack.api().get(`/api/v1/automation-keys/${key.body.id}`).set("Authorization", `Bearer ${other.apiKey}`);
    expect(theirKeys.status).toBe(404);
    const theirServer = await stack.api().get(`/api/v1/servers/${server.body.id}`).set("Authorization", `Bearer ${other.apiKey}`);
    expect(theirServer.status).toBe(404);
  });
});
