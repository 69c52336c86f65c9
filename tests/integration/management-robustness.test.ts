import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createFixture, createOperation, createServer } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * The management API under input PostgreSQL cannot store and under requests that race each other: a
 * 4xx with `{detail}` and a consistent audit trail, never a 500 (each case below was one).
 */
describe("management API robustness", () => {
  const suite = useStack({ dispatchers: 0 });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  /** A request with a raw JSON body, as a client's JSON spells it (a lone surrogate cannot go through JSON.stringify unescaped). */
  const send = (method: "post" | "patch" | "delete", url: string, apiKey: string, json?: string) => {
    const req = stack.api()[method](url).set("Authorization", `Bearer ${apiKey}`);
    return json === undefined ? req : req.set("Content-Type", "application/json").send(json);
  };
  const get = (url: string, token: string) => stack.api().get(url).set("Authorization", `Bearer ${token}`);
  const detail = (res: { status: number; body: { detail?: string } }) => [res.status, res.body.detail];

  it("refuses NUL characters and lone surrogates in any field or filter with 422 naming it", async () => {
    const fx = await createFixture();
    const dir = mkdtempSync(path.join(tmpdir(), "rb-robust-"));
    const bodies: Array<[string, string, RegExp]> = [
      ["/api/v1/servers", '{"name":"a\\u0000b"}', /"name" cannot contain NUL characters/],
      ["/api/v1/servers", '{"name":"\\ud800"}', /"name" is not valid Unicode/],
      ["/api/v1/api-keys", '{"name":"k\\u0000"}', /"name" cannot contain NUL/],
      ["/api/v1/automation-keys", '{"name":"\\udc00x"}', /"name" is not valid Unicode/],
      ["/api/v1/registry-credentials", '{"name":"r","registry_url":"ghcr.io","username":"\\ud800","password":"p"}', /"username" is not valid Unicode/],
      ["/api/v1/applications", `{"name":"a\\u0000","server_id":"${fx.server.id}","working_directory":"${dir}","deploy_command":"true"}`, /"name" cannot contain NUL/],
    ];
    for (const [url, json, pattern] of bodies) expect([url, ...detail(await send("post", url, fx.apiKey, json))]).toEqual([url, 422, expect.stringMatching(pattern)]);
    // run_context is stored as jsonb, which takes no NUL either.
    const exec = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .set("Content-Type", "application/json")
      .send(`{"server_id":"${fx.server.id}","command":"true","run_context":{"repository":"a\\u0000"}}`);
    expect(detail(exec)).toEqual([422, expect.stringMatching(/"run_context.repository" cannot contain NUL/)]);
    for (const [url, token] of [
      ["/api/v1/operations?run_id=a%00b", fx.apiKey],
      ["/api/v1/audit-events?run_id=%00", fx.apiKey],
      ["/api/automation/v1/operations?run_id=a%00b", fx.token],
    ] as const) {
      expect([url, ...detail(await get(url, token))]).toEqual([url, 422, expect.stringMatching(/"run_id" cannot contain NUL/)]);
    }
  });

  it("refuses dates PostgreSQL cannot store, and days that do not exist, with 422", async () => {
    const fx = await createFixture();
    for (const expires of ["+010000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "2030-02-30T00:00:00Z", "2030-01-01T10:00"]) {
      const res = await send("post", "/api/v1/automation-keys", fx.apiKey, JSON.stringify({ name: "k", expires_at: expires }));
      expect([expires, ...detail(res)]).toEqual([expires, 422, expect.stringMatching(/"expires_at"/)]);
    }
    for (const query of ["created_from=0000-01-01", "created_before=9999-12-31T23:59-01:00", "created_from=0001-01-01T00:00%2B01:00"]) {
      for (const list of ["/api/v1/audit-events", "/api/v1/operations"]) {
        const res = await get(`${list}?${query}`, fx.apiKey);
        expect([list, query, ...detail(res)]).toEqual([list, query, 422, expect.stringMatching(/years 0001 to 9999|ISO 8601/)]);
      }
    }
    const farCursor = Buffer.from(JSON.stringify(["-100000-01-01T00:00:00Z", fx.server.id])).toString("base64url");
    expect(detail(await get(`/api/v1/audit-events?cursor=${farCursor}`, fx.apiKey))).toEqual([422, expect.stringMatching(/cursor/)]);
  });

  it("refuses a live output position past Redis's 64-bit stream ids, and finds nothing after the largest", async () => {
    const fx = await createFixture();
    const op = await createOperation(fx.tenant.id, fx.server.id);
    const output = (after: string) => get(`/dashboard/api/operations/${op.id}/output?after=${after}`, fx.apiKey);
    for (const after of ["99999999999999999999-99999999999999999999", "18446744073709551616-0"]) expect(detail(await output(after))).toEqual([422, expect.stringMatching(/"after"/)]);
    const last = await output("18446744073709551615-18446744073709551615");
    expect([last.status, last.body.entries]).toEqual([200, []]);
  });

  it("answers requests racing each other consistently: no 500, no change to a revoked key, a rotation of a deleted server is a 404", async () => {
    const fx = await createFixture();
    const dir = mkdtempSync(path.join(tmpdir(), "rb-robust-"));
    for (let i = 0; i < 8; i++) {
      // An application created on a server being deleted.
      const { server } = await createServer(fx.tenant.id);
      const [created, deleted] = await Promise.all([
        send("post", "/api/v1/applications", fx.apiKey, JSON.stringify({ name: `a${i}`, server_id: server.id, working_directory: dir, deploy_command: "true" })),
        send("delete", `/api/v1/servers/${server.id}`, fx.apiKey),
      ]);
      expect([i, [201, 422].includes(created.status), deleted.status]).toEqual([i, true, 204]);
      // A runner token rotated while its server is deleted.
      const { server: other } = await createServer(fx.tenant.id);
      const [rotated] = await Promise.all([send("post", `/api/v1/servers/${other.id}/runner-token`, fx.apiKey), send("delete", `/api/v1/servers/${other.id}`, fx.apiKey)]);
      expect([i, rotated.status, [200, 404].includes(rotated.status)]).toEqual([i, rotated.status, true]);
      // A key updated while it is revoked.
      const key = await send("post", "/api/v1/automation-keys", fx.apiKey, JSON.stringify({ name: `k${i}` }));
      const [patched] = await Promise.all([
        send("patch", `/api/v1/automation-keys/${key.body.id}`, fx.apiKey, JSON.stringify({ name: "renamed", rate_limit: 7 })),
        send("delete", `/api/v1/automation-keys/${key.body.id}`, fx.apiKey),
      ]);
      // Answered 200 only for a change made before the revocation (the key still active then), else 409.
      const answer = patched.status === 200 ? `200 ${String(patched.body.status)}` : String(patched.status);
      expect([i, ["200 active", "409"].includes(answer) ? "ok" : answer]).toEqual([i, "ok"]);
      const events = await testPrisma().auditEvent.findMany({ where: { automationKeyId: key.body.id, type: { in: ["key.updated", "key.revoked"] } }, orderBy: { createdAt: "asc" } });
      expect([i, events.at(-1)?.type]).toEqual([i, "key.revoked"]);
    }
  });

  it("records each of two updates at once with what it changed: the second's 'before' is the first's 'after'", async () => {
    const fx = await createFixture();
    const dir = mkdtempSync(path.join(tmpdir(), "rb-robust-"));
    for (let i = 0; i < 5; i++) {
      const app = await send("post", "/api/v1/applications", fx.apiKey, JSON.stringify({ name: `p${i}`, server_id: fx.server.id, working_directory: dir, deploy_command: "orig" }));
      await Promise.all(["A", "B"].map((c) => send("patch", `/api/v1/applications/${app.body.id}`, fx.apiKey, JSON.stringify({ deploy_command: c }))));
      const events = await testPrisma().auditEvent.findMany({ where: { type: "application.updated", data: { path: ["application_id"], equals: app.body.id } }, orderBy: { createdAt: "asc" } });
      const steps = events.map((e) => (e.data as { before: { deploy_command: string }; after: { deploy_command: string } })).map((d) => [d.before.deploy_command, d.after.deploy_command]);
      expect([i, steps.length, steps[0]?.[0], steps[1]?.[0]]).toEqual([i, 2, "orig", steps[0]?.[1]]);
    }
  });

  it("refuses to move an application to another server while a deployment is in progress or waiting (409), as it refuses a delete", async () => {
    const fx = await createFixture();
    const { server: other } = await createServer(fx.tenant.id);
    const dir = mkdtempSync(path.join(tmpdir(), "rb-robust-"));
    const app = await send("post", "/api/v1/applications", fx.apiKey, JSON.stringify({ name: "mover", server_id: fx.server.id, working_directory: dir, deploy_command: "true" }));
    const op = await createOperation(fx.tenant.id, fx.server.id, { type: "deploy" });
    await testPrisma().deployment.create({ data: { applicationId: app.body.id, operationId: op.id, commitRef: "main" } });
    const move = () => send("patch", `/api/v1/applications/${app.body.id}`, fx.apiKey, JSON.stringify({ server_id: other.id }));
    expect(detail(await move())).toEqual([409, expect.stringMatching(/1 deployment in progress or waiting on its server/)]);
    // Anything else may change meanwhile, and the same server is no move.
    expect((await send("patch", `/api/v1/applications/${app.body.id}`, fx.apiKey, JSON.stringify({ name: "renamed", server_id: fx.server.id }))).status).toBe(200);
    await testPrisma().operation.update({ where: { id: op.id }, data: { status: "completed", exitCode: 0, completedAt: new Date() } });
    const moved = await move();
    expect([moved.status, moved.body.server_id]).toEqual([200, other.id]);
  });
});
