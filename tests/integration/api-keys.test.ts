import { hashToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createTenant } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** General API keys through the management API: listed, created once, revoked. */
describe("management API: general API keys", () => {
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("creates a key shown once, lists keys without secrets, and revokes with an audit trail", async () => {
    const { tenant, apiKey } = await createTenant();
    const as = (key: string) => ({ Authorization: `Bearer ${key}` });
    const first = await stack.api().get("/api/v1/api-keys").set(as(apiKey));
    expect(first.status).toBe(200);
    expect(first.body.data).toEqual([expect.objectContaining({ name: "test", status: "active", current: true, prefix: apiKey.slice(0, 12) })]);

    const created = await stack.api().post("/api/v1/api-keys").set(as(apiKey)).send({ name: "ops laptop" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "ops laptop", status: "active", current: false, key: expect.stringMatching(/^rbk_[0-9A-Za-z]{42}$/) });
    const row = await testPrisma().apiKey.findUniqueOrThrow({ where: { id: created.body.id } });
    expect(row.keyHash).toBe(hashToken(created.body.key));
    const list = await stack.api().get("/api/v1/api-keys").set(as(created.body.key));
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);
    expect(list.body.data.find((k: { id: string }) => k.id === created.body.id).current).toBe(true);

    expect((await stack.api().post("/api/v1/api-keys").set(as(apiKey)).send({})).status).toBe(422);

    const revoked = await stack.api().delete(`/api/v1/api-keys/${created.body.id}`).set(as(apiKey));
    expect(revoked.body).toMatchObject({ status: "revoked", revoked_at: expect.any(String) });
    const refused = await stack.api().get("/api/v1/servers").set(as(created.body.key));
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toMatch(/revoked/);

    const audit = await testPrisma().auditEvent.findMany({ where: { tenantId: tenant.id, type: { in: ["api_key.created", "api_key.revoked"] } } });
    expect(audit.map((a) => a.type).sort()).toEqual(["api_key.created", "api_key.revoked"]);
    expect(JSON.stringify(audit)).not.toContain(created.body.key);

    // Another tenant can neither see nor revoke them.
    const other = await createTenant();
    expect((await stack.api().delete(`/api/v1/api-keys/${row.id}`).set(as(other.apiKey))).status).toBe(404);
    const theirs = await stack.api().get("/api/v1/api-keys").set(as(other.apiKey));
    expect(theirs.body.data.map((k: { id: string }) => k.id)).not.toContain(row.id);
  });
});
