import { randomUUID } from "node:crypto";
import { TokenKind, generateToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createServer, createTenant } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack, useStackWithRunner } from "../helpers/suite";

/** Every error the spine answers: 400/401/404/409/422, always `{detail}`, never a 500. */
describe("Automation API errors and limits", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const post = (body: unknown, token = fx.token) => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`).send(body as object);
  const exec = (extra: Record<string, unknown>) => post({ server_id: fx.server.id, command: "true", ...extra });

  function expectDetail(res: { status: number; body: unknown }, status: number, pattern: RegExp) {
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ detail: expect.stringMatching(pattern) });
  }

  describe("401", () => {
    it("refuses a request without Authorization", async () => {
      const res = await stack.api().post("/api/automation/v1/exec").send({ server_id: fx.server.id, command: "true" });
      expectDetail(res, 401, /Missing Authorization header/);
    });
    it("refuses a malformed header", async () => {
      const res = await stack.api().get(`/api/automation/v1/operations/${randomUUID()}`).set("Authorization", `Token ${fx.token}`);
      expectDetail(res, 401, /Malformed Authorization header/);
    });
    it("refuses a key whose checksum is wrong", async () => {
      const broken = fx.token.slice(0, -1) + (fx.token.endsWith("A") ? "B" : "A");
      expectDetail(await post({}, broken), 401, /Invalid API key/);
    });
    it("refuses a well-formed key that does not exist", async () => {
      expectDetail(await post({}, generateToken(TokenKind.AutomationKey)), 401, /Invalid API key/);
    });
    it("refuses a general API key on the Automation API", async () => {
      expectDetail(await post({}, fx.apiKey), 401, /Invalid API key/);
    });
    it("refuses a revoked key and an expired key", async () => {
      const revoked = await createAutomationKey(fx.tenant.id, { revokedAt: new Date() });
      expectDetail(await post({ server_id: fx.server.id, command: "true" }, revoked.token), 401, /revoked/);
      const expired = await createAutomationKey(fx.tenant.id, { expiresAt: new Date(Date.now() - 1000) });
      expectDetail(await post({ server_id: fx.server.id, command: "true" }, expired.token), 401, /expired/);
    });
  });

  describe("404 and 409", () => {
    it("answers 404 for an unknown server and for another tenant's server", async () => {
      expectDetail(await exec({ server_id: randomUUID() }), 404, /Server .* not found/);
      const other = await createTenant();
      const { server } = await createServer(other.tenant.id);
      expectDetail(await exec({ server_id: server.id }), 404, /not found/);
    });
    it("answers 404 for unknown, malformed and other tenants' operation ids", async () => {
      const get = (id: string, token = fx.token) => stack.api().get(`/api/automation/v1/operations/${id}`).set("Authorization", `Bearer ${token}`);
      expectDetail(await get(randomUUID()), 404, /not found/);
      expectDetail(await get("not-a-uuid"), 404, /not found/);
      const mine = await exec({});
      expect(mine.status).toBe(200);
      const other = await createTenant();
      const { token } = await createAutomationKey(other.tenant.id);
      expectDetail(await get(mine.body.operation_id, token), 404, /not found/);
      expect((await get(mine.body.operation_id)).status).toBe(200);
    });
    it("answers 409 when the server's runner is not connected, and records nothing", async () => {
      const { server } = await createServer(fx.tenant.id, "offline-box");
      const before = await testPrisma().operation.count({ where: { serverId: server.id } });
      expectDetail(await exec({ server_id: server.id }), 409, /no connected runner/);
      expect(await testPrisma().operation.count({ where: { serverId: server.id } })).toBe(before);
    });
  });

  describe("400 and 422", () => {
    it("answers malformed JSON with 400 and {detail}", async () => {
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).set("Content-Type", "application/json").send('{"server_id": ');
      expectDetail(res, 400, /Malformed JSON/);
    });
    it("answers an env too large for the body limit with 422, as the spec lists it", async () => {
      expectDetail(await exec({ env: { BIG: "x".repeat(1_100_000) } }), 422, /too large/);
    });
    it("takes the largest valid request as a client escaping everything to ASCII spells it (over 512 KiB)", async () => {
      const emoji = "\u{1F600}";
      const env: Record<string, string> = {};
      // 200 keys, 65,400 bytes of keys and values, every value byte a control character (6 bytes escaped).
      for (let i = 0; i < 200; i++) env[`V${String(i).padStart(3, "0")}`] = "\u0001".repeat(323);
      const body = JSON.stringify({
        // Validation comes before the server lookup: an unknown server answers 404 once the body was read and valid.
        server_id: randomUUID(),
        command: `true #${emoji.repeat(8186)}`,
        working_directory: `/${emoji.repeat(2047)}`,
        env,
        run_context: { provider: "github_actions", note_a: emoji.repeat(1000), note_b: emoji.repeat(1000) },
      }).replace(/\u{1F600}/gu, "\\ud83d\\ude00");
      expect(body.length).toBeGreaterThan(530_000);
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).set("Content-Type", "application/json").send(body);
      expectDetail(res, 404, /^Server .* not found/);
    });
    it("takes a 64 KiB env that JSON spells with an escape per character (control characters must be)", async () => {
      const value = "\u0001".repeat(60_000);
      const body = JSON.stringify({ server_id: fx.server.id, command: 'test ${#V} -eq 60000', env: { V: value } });
      expect(body.length).toBeGreaterThan(360_000);
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).set("Content-Type", "application/json").send(body);
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
    });
    it("takes null for an optional field as the field not sent (its default applies)", async () => {
      const res = await exec({ command: "echo $RB_NULLS", working_directory: null, env: null, timeout_seconds: null, run_id: null, run_context: null });
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "\n" });
      const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
      expect(row).toMatchObject({ timeoutSeconds: 60, runId: null, runContext: null, workingDirectory: null, envKeys: [] });
      // Required fields stay required, null or not.
      expectDetail(await exec({ command: null }), 422, /"command" must be a string/);
    });
    it("takes run_context fields as CI systems fill them (empty, null) and a numeric run_id as its string", async () => {
      const res = await exec({ run_id: 12345, run_context: { provider: "github_actions", ref: "", actor: null, sha: "abc123" } });
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
      const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
      expect(op.runId).toBe("12345");
      expect(op.runContext).toEqual({ provider: "github_actions", ref: "", actor: null, sha: "abc123" });
      expectDetail(await exec({ run_id: 1.5 }), 422, /"run_id"/);
      expectDetail(await exec({ run_id: -1 }), 422, /"run_id"/);
      expectDetail(await exec({ run_id: "" }), 422, /"run_id"/);
    });
    it("answers a path with broken percent-encoding with 400, not a 500", async () => {
      const res = await stack.api().get("/api/automation/v1/operations/%E0%A4%A").set("Authorization", `Bearer ${fx.token}`);
      expectDetail(res, 400, /percent-encoding/);
    });
    it("reads a body sent without a JSON content type (curl -d)", async () => {
      const res = await stack
        .api()
        .post("/api/automation/v1/exec")
        .set("Authorization", `Bearer ${fx.token}`)
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send(JSON.stringify({ server_id: fx.server.id, command: "echo form" }));
      expect(res.status).toBe(200);
      expect(res.body.stdout).toBe("form\n");
    });
    it("refuses a body that is not an object", async () => {
      expectDetail(await post([1, 2]), 422, /JSON object/);
      expectDetail(await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).set("Content-Type", "application/json").send("42"), 422, /JSON object/);
    });
    it("names missing and mistyped fields", async () => {
      expectDetail(await post({ command: "true" }), 422, /"server_id" is required/);
      expectDetail(await post({ server_id: fx.server.id }), 422, /"command" is required/);
      expectDetail(await exec({ server_id: "nope" }), 422, /"server_id" must be a valid GUID/);
      expectDetail(await exec({ command: 12 }), 422, /"command" must be a string/);
      expectDetail(await exec({ command: "   " }), 422, /"command" cannot be blank/);
      expectDetail(await exec({ timeout_seconds: "60" }), 422, /"timeout_seconds" must be a number/);
      expectDetail(await exec({ timeout_seconds: 1.5 }), 422, /"timeout_seconds" must be an integer/);
      expectDetail(await exec({ env: { A: 1 } }), 422, /"env.A" must be a string/);
      expectDetail(await exec({ env: { "1BAD": "x" } }), 422, /not a valid environment variable name/);
      expectDetail(await exec({ env: "A=1" }), 422, /"env" must be of type object/);
      expectDetail(await exec({ timeout: 300 }), 422, /"timeout" is not allowed/);
      expectDetail(await exec({ run_context: { repository: 5 } }), 422, /"run_context.repository" must be a string/);
    });

    it("refuses a key named __proto__ (joi would drop it without a word) wherever it is, and runs nothing", async () => {
      // As a client's JSON spells it: a JavaScript literal { __proto__: … } would set a prototype instead.
      const raw = (json: string) =>
        stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).set("Content-Type", "application/json").send(json);
      const before = await testPrisma().operation.count({ where: { tenantId: fx.tenant.id } });
      expectDetail(await raw(`{"server_id":"${fx.server.id}","command":"true","env":{"A":"1","__proto__":"x"}}`), 422, /"env\.__proto__": a key named __proto__ cannot be passed/);
      expectDetail(await raw(`{"server_id":"${fx.server.id}","command":"true","run_context":{"__proto__":{"a":"b"}}}`), 422, /"run_context\.__proto__"/);
      expectDetail(await raw(`{"__proto__":{},"server_id":"${fx.server.id}","command":"true"}`), 422, /"__proto__": a key named/);
      expect(await testPrisma().operation.count({ where: { tenantId: fx.tenant.id } })).toBe(before);
    });

    it("accepts a command of exactly 8,192 characters and refuses 8,193", async () => {
      const ok = `: ${"x".repeat(8190)}`;
      expect(ok.length).toBe(8192);
      const res = await exec({ command: ok });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
      expectDetail(await exec({ command: `${ok}x` }), 422, /"command" is longer than 8192 characters/);
      // Characters, not UTF-16 units: 8,192 of them outside the Basic Multilingual Plane are 16,384 units.
      const emoji = `: ${"\u{1F680}".repeat(8190)}`;
      expect([...emoji].length).toBe(8192);
      expect((await exec({ command: emoji })).body).toMatchObject({ status: "completed", exit_code: 0 });
      expectDetail(await exec({ command: `${emoji}\u{1F680}` }), 422, /"command" is longer than 8192 characters/);
    });

    it("accepts 200 env keys and refuses 201", async () => {
      const env = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, "v"]));
      const res = await exec({ env: env(200), command: 'test "$K199" = v' });
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
      expectDetail(await exec({ env: env(201) }), 422, /"env" has more than 200 keys/);
    });

    it("accepts env of exactly 64 KiB of keys and values and refuses one byte more", async () => {
      // Two keys: "A" + value, "B" + value, filling 65,536 bytes exactly.
      const half = 65536 / 2 - 1;
      const env = { A: "a".repeat(half), B: "b".repeat(half) };
      const res = await exec({ env, command: 'test ${#A} -eq 32767 && test ${#B} -eq 32767' });
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
      expectDetail(await exec({ env: { ...env, B: `${env.B}b` } }), 422, /"env" is 65537 bytes; the limit is 65536/);
    });

    it.each([
      [1, true],
      [900, true],
      [0, false],
      [901, false],
      [-5, false],
    ])("timeout_seconds %p accepted: %p", async (timeout, accepted) => {
      const res = await exec({ timeout_seconds: timeout });
      if (accepted) expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
      else expectDetail(res, 422, /"timeout_seconds" must be (greater|less) than or equal to (1|900)/);
    });

    it("stores the default timeout of 60 seconds", async () => {
      const res = await exec({});
      const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
      expect(op.timeoutSeconds).toBe(60);
    });
  });

  it("answers unknown routes with 404 {detail}", async () => {
    expectDetail(await stack.api().get("/api/automation/v1/nope").set("Authorization", `Bearer ${fx.token}`), 404, /No route/);
  });
});

describe("polling is scoped like submitting", () => {
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("refuses a key to read an operation on a server outside its allowed servers", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id);
    const op = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "true" });
    const { server: other } = await createServer(fx.tenant.id);
    const scoped = await createAutomationKey(fx.tenant.id, { allowedServerIds: [other.id] });
    const res = await stack.api().get(`/api/automation/v1/operations/${op.body.operation_id}`).set("Authorization", `Bearer ${scoped.token}`);
    expect(res.status).toBe(403);
    expect(res.body.detail).toMatch(/not in this API key's allowed servers/);
    const allowed = await createAutomationKey(fx.tenant.id, { allowedServerIds: [fx.server.id] });
    expect((await stack.api().get(`/api/automation/v1/operations/${op.body.operation_id}`).set("Authorization", `Bearer ${allowed.token}`)).status).toBe(200);
  });
});
