import { TokenKind, hashToken, isWellFormedToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createOperation, createServer, createTenant } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** The management API for automation keys: create, list, get, PATCH, revoke; validation; tenant isolation. */
describe("management API: automation keys", () => {
  const suite = useStack();
  let stack: TestStack;
  let a: Awaited<ReturnType<typeof createTenant>>;
  let b: Awaited<ReturnType<typeof createTenant>>;
  let serverA: string;
  let serverB: string;
  let credA: string;
  let credB: string;

  const as = (apiKey: string) => ({
    post: (path: string, body: unknown) => stack.api().post(`/api/v1${path}`).set("Authorization", `Bearer ${apiKey}`).send(body as object),
    patch: (path: string, body: unknown) => stack.api().patch(`/api/v1${path}`).set("Authorization", `Bearer ${apiKey}`).send(body as object),
    get: (path: string) => stack.api().get(`/api/v1${path}`).set("Authorization", `Bearer ${apiKey}`),
    del: (path: string) => stack.api().delete(`/api/v1${path}`).set("Authorization", `Bearer ${apiKey}`),
  });
  const cred = async (tenantId: string) =>
    (
      await testPrisma().registryCredential.create({
        data: { tenantId, name: "reg", registryUrl: "ghcr.io", registryType: "ghcr", username: "u", passwordCiphertext: "v1.x.y.z.w" },
      })
    ).id;

  beforeAll(async () => {
    ({ stack } = suite);
    a = await createTenant();
    b = await createTenant();
    serverA = (await createServer(a.tenant.id)).server.id;
    serverB = (await createServer(b.tenant.id)).server.id;
    credA = await cred(a.tenant.id);
    credB = await cred(b.tenant.id);
  });

  it("takes ids in upper case or in braces as the same ids (stored as PostgreSQL spells them)", async () => {
    const res = await as(a.apiKey).post("/automation-keys", { name: "upper", allowed_server_ids: [serverA.toUpperCase()], allowed_credential_ids: [`{${credA}}`] });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ allowed_server_ids: [serverA], allowed_credential_ids: [credA] });
  });

  it("creates a key, returns it exactly once, and stores only its SHA-256", async () => {
    const res = await as(a.apiKey).post("/automation-keys", {
      name: "github deploy",
      allowed_server_ids: [serverA],
      allowed_operations: ["exec", "deploy"],
      allowed_credential_ids: [credA],
      ip_allowlist: ["10.1.2.3/8", "2001:DB8::/32", "192.0.2.7"],
      rate_limit: 30,
      expires_at: "2099-01-01T00:00:00Z",
    });
    expect(res.status).toBe(201);
    const token: string = res.body.key;
    expect(isWellFormedToken(token, TokenKind.AutomationKey)).toBe(true);
    expect(token).toMatch(/^rca_[0-9A-Za-z]{42}$/);
    expect(res.body).toMatchObject({
      name: "github deploy",
      prefix: token.slice(0, 12),
      status: "active",
      allowed_server_ids: [serverA],
      allowed_operations: ["exec", "deploy"],
      allowed_credential_ids: [credA],
      ip_allowlist: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"],
      rate_limit: 30,
      expires_at: "2099-01-01T00:00:00.000Z",
      operation_count: 0,
      last_used_at: null,
    });
    const row = await testPrisma().automationKey.findUniqueOrThrow({ where: { id: res.body.id } });
    expect(row.keyHash).toBe(hashToken(token));
    expect(JSON.stringify(row)).not.toContain(token.slice(4));
    const got = await as(a.apiKey).get(`/automation-keys/${res.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body.key).toBeUndefined();
    expect(JSON.stringify(got.body)).not.toContain(token.slice(4));
    const audit = await testPrisma().auditEvent.findMany({ where: { automationKeyId: res.body.id } });
    expect(audit.map((e) => e.type)).toEqual(["key.created"]);
    expect(JSON.stringify(audit)).not.toContain(token.slice(4));
    // The new key works at once.
    const call = await stack.api().get("/api/automation/v1/operations/00000000-0000-4000-8000-000000000000").set("Authorization", `Bearer ${token}`);
    expect(call.status).toBe(403); // ...from 127.0.0.1, which this allowlist does not include
    expect(call.body.detail).toMatch(/Client IP 127\.0\.0\.1/);
  });

  it("applies the spec's defaults: every scope empty (= all), 100 requests per minute, no expiry", async () => {
    const res = await as(a.apiKey).post("/automation-keys", { name: "defaults" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ allowed_server_ids: [], allowed_operations: [], allowed_credential_ids: [], ip_allowlist: [], rate_limit: 100, expires_at: null });
  });

  it("accepts the rate limit's boundaries, 1 and 1000", async () => {
    for (const rate_limit of [1, 1000]) {
      const res = await as(a.apiKey).post("/automation-keys", { name: `limit-${rate_limit}`, rate_limit });
      expect(res.status).toBe(201);
      expect(res.body.rate_limit).toBe(rate_limit);
    }
  });

  it.each([
    [{}, /"name" is required/],
    [{ name: "" }, /"name" is not allowed to be empty/],
    [{ name: "x".repeat(201) }, /"name" length must be less than or equal to 200/],
    [{ name: "k", rate_limit: 0 }, /"rate_limit" must be greater than or equal to 1/],
    [{ name: "k", rate_limit: 1001 }, /"rate_limit" must be less than or equal to 1000/],
    [{ name: "k", rate_limit: "50" }, /"rate_limit" must be a number/],
    [{ name: "k", rate_limit: 2.5 }, /"rate_limit" must be an integer/],
    [{ name: "k", allowed_operations: ["shell"] }, /"allowed_operations\[0\]" must be one of/],
    [{ name: "k", allowed_operations: ["exec", "exec"] }, /"allowed_operations\[1\]" contains a duplicate value/],
    [{ name: "k", allowed_server_ids: ["not-a-uuid"] }, /"allowed_server_ids\[0\]" must be a valid GUID/],
    [{ name: "k", allowed_credential_ids: "abc" }, /"allowed_credential_ids" must be an array/],
    [{ name: "k", ip_allowlist: ["10.0.0.0/33"] }, /"ip_allowlist\[0\]" is not an IP address or CIDR range/],
    [{ name: "k", ip_allowlist: ["1.2.3.4", "example.com"] }, /"ip_allowlist\[1\]" is not an IP address or CIDR range/],
    [{ name: "k", expires_at: "tomorrow" }, /"expires_at"/],
    [{ name: "k", expires_at: "2001-01-01T00:00:00Z" }, /"expires_at" must be in the future/],
    [{ name: "k", scopes: [] }, /"scopes" is not allowed/],
  ])("refuses %j with 422 naming the field", async (body, detail) => {
    const res = await as(a.apiKey).post("/automation-keys", body);
    expect(res.status).toBe(422);
    expect(res.body).toEqual({ detail: expect.stringMatching(detail) });
  });

  it("refuses another tenant's server or credential id (and unknown ids) at create with 422 cross-tenant reference", async () => {
    const srv = await as(a.apiKey).post("/automation-keys", { name: "k", allowed_server_ids: [serverA, serverB] });
    expect(srv.status).toBe(422);
    expect(srv.body.detail).toBe(`"allowed_server_ids[1]" (${serverB}) is a cross-tenant reference or an unknown server`);
    const cr = await as(a.apiKey).post("/automation-keys", { name: "k", allowed_credential_ids: [credB] });
    expect(cr.status).toBe(422);
    expect(cr.body.detail).toMatch(/"allowed_credential_ids\[0\]" .* cross-tenant reference/);
    const unknown = await as(a.apiKey).post("/automation-keys", { name: "k", allowed_server_ids: ["00000000-0000-4000-8000-000000000000"] });
    expect(unknown.status).toBe(422);
    expect(await testPrisma().automationKey.count({ where: { tenantId: a.tenant.id, name: "k" } })).toBe(0);
  });

  it("updates name, scopes, rate limit and expiry with PATCH, audited with before and after", async () => {
    const created = await as(a.apiKey).post("/automation-keys", { name: "before" });
    const id: string = created.body.id;
    const res = await as(a.apiKey).patch(`/automation-keys/${id}`, {
      name: "after",
      allowed_server_ids: [serverA],
      allowed_operations: ["restart"],
      allowed_credential_ids: [credA],
      ip_allowlist: ["::ffff:10.0.0.0/104"],
      rate_limit: 5,
      expires_at: "2098-06-01T00:00:00Z",
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id,
      name: "after",
      allowed_server_ids: [serverA],
      allowed_operations: ["restart"],
      allowed_credential_ids: [credA],
      ip_allowlist: ["10.0.0.0/8"],
      rate_limit: 5,
      expires_at: "2098-06-01T00:00:00.000Z",
      status: "active",
    });
    const cleared = await as(a.apiKey).patch(`/automation-keys/${id}`, { expires_at: null, allowed_server_ids: [] });
    expect(cleared.body).toMatchObject({ expires_at: null, allowed_server_ids: [], name: "after" });
    const audit = await as(a.apiKey).get(`/audit-events?automation_key_id=${id}&type=key.updated`);
    expect(audit.body.data).toHaveLength(2);
    expect(audit.body.data[1].data.changes).toMatchObject({ name: { from: "before", to: "after" }, rate_limit: { from: 100, to: 5 } });
    expect(audit.body.data[0].data.changes).toEqual({ expires_at: { from: "2098-06-01T00:00:00.000Z", to: null }, allowed_server_ids: { from: [serverA], to: [] } });
  });

  it("validates PATCH bodies and refuses cross-tenant ids at update", async () => {
    const { key } = await createAutomationKey(a.tenant.id);
    const patch = (body: unknown) => as(a.apiKey).patch(`/automation-keys/${key.id}`, body);
    expect((await patch({})).status).toBe(422);
    expect((await patch({ rate_limit: 0 })).body.detail).toMatch(/"rate_limit"/);
    expect((await patch({ prefix: "rca_x" })).body.detail).toMatch(/"prefix" is not allowed/);
    expect((await patch({ expires_at: new Date(Date.now() - 60_000).toISOString() })).status).toBe(422);
    const srv = await patch({ allowed_server_ids: [serverB] });
    expect(srv.status).toBe(422);
    expect(srv.body.detail).toMatch(/cross-tenant reference/);
    const cr = await patch({ allowed_credential_ids: [credA, credB] });
    expect(cr.status).toBe(422);
    expect(cr.body.detail).toMatch(/"allowed_credential_ids\[1\]" .* cross-tenant reference/);
    const row = await testPrisma().automationKey.findUniqueOrThrow({ where: { id: key.id } });
    expect(row.allowedServerIds).toEqual([]);
    expect(row.allowedCredentialIds).toEqual([]);
  });

  it("revokes a key (once), and a revoked key cannot be changed", async () => {
    const { key, token } = await createAutomationKey(a.tenant.id);
    const res = await as(a.apiKey).del(`/automation-keys/${key.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: key.id, status: "revoked", revoked_at: expect.any(String) });
    const again = await as(a.apiKey).del(`/automation-keys/${key.id}`);
    expect(again.body.revoked_at).toBe(res.body.revoked_at);
    expect(await testPrisma().auditEvent.count({ where: { automationKeyId: key.id, type: "key.revoked" } })).toBe(1);
    const patch = await as(a.apiKey).patch(`/automation-keys/${key.id}`, { expires_at: null });
    expect(patch.status).toBe(409);
    expect(patch.body.detail).toMatch(/revoked/);
    const call = await stack.api().get("/api/automation/v1/operations/00000000-0000-4000-8000-000000000000").set("Authorization", `Bearer ${token}`);
    expect(call.status).toBe(401);
  });

  it("lists keys with status, scopes, last_used_at and operation_count", async () => {
    const t = await createTenant();
    const srv = (await createServer(t.tenant.id)).server.id;
    const active = await createAutomationKey(t.tenant.id, { allowedOperations: ["exec"] });
    await testPrisma().automationKey.update({ where: { id: active.key.id }, data: { lastUsedAt: new Date("2026-01-02T03:04:05Z") } });
    const revoked = await createAutomationKey(t.tenant.id, { revokedAt: new Date() });
    const expired = await createAutomationKey(t.tenant.id, { expiresAt: new Date(Date.now() - 1000) });
    for (let i = 0; i < 3; i++) {
      await createOperation(t.tenant.id, srv, { automationKeyId: active.key.id });
    }
    const res = await as(t.apiKey).get("/automation-keys");
    expect(res.status).toBe(200);
    const byId = new Map((res.body.data as { id: string }[]).map((k) => [k.id, k]));
    expect(byId.size).toBe(3);
    expect(byId.get(active.key.id)).toMatchObject({ status: "active", operation_count: 3, allowed_operations: ["exec"], last_used_at: "2026-01-02T03:04:05.000Z" });
    expect(byId.get(revoked.key.id)).toMatchObject({ status: "revoked", operation_count: 0 });
    expect(byId.get(expired.key.id)).toMatchObject({ status: "expired", operation_count: 0 });
    for (const k of res.body.data) expect(k.key).toBeUndefined();
    const one = await as(t.apiKey).get(`/automation-keys/${active.key.id}`);
    expect(one.body).toMatchObject({ id: active.key.id, operation_count: 3, status: "active" });
  });

  it("isolates tenants on every read and write of keys", async () => {
    const { key } = await createAutomationKey(a.tenant.id);
    const theirs = as(b.apiKey);
    expect((await theirs.get(`/automation-keys/${key.id}`)).status).toBe(404);
    expect((await theirs.patch(`/automation-keys/${key.id}`, { name: "stolen" })).status).toBe(404);
    expect((await theirs.del(`/automation-keys/${key.id}`)).status).toBe(404);
    const list = await theirs.get("/automation-keys");
    expect((list.body.data as { id: string }[]).some((k) => k.id === key.id)).toBe(false);
    const audit = await theirs.get(`/audit-events?automation_key_id=${key.id}`);
    expect(audit.body).toEqual({ data: [], next_cursor: null });
    expect((await as(a.apiKey).get("/automation-keys/not-a-uuid")).status).toBe(404);
    const row = await testPrisma().automationKey.findUniqueOrThrow({ where: { id: key.id } });
    expect(row).toMatchObject({ name: key.name, revokedAt: null });
  });
});
