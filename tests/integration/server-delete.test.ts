import { randomUUID } from "node:crypto";
import { holdRowLock, testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createOperation, createServer, createTenant } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

type Fixture = Awaited<ReturnType<typeof createFixture>>;

/**
 * DELETE /api/v1/servers/{id}: decommissioning a server. A real dispatcher and
 * runner processes, the gateway in-process, the real database.
 */
describe("deleting a server", () => {
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  const del = (serverId: string, apiKey: string) => stack.api().delete(`/api/v1/servers/${serverId}`).set("Authorization", `Bearer ${apiKey}`);
  const exec = (fx: Fixture, command: string) => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command });

  it("deletes it with its history, audits it, and stops its runner for good", async () => {
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id);
    const ran = await exec(fx, "echo hello");
    expect(ran.body).toMatchObject({ status: "completed", exit_code: 0 });
    const app = await testPrisma().application.create({ data: { tenantId: fx.tenant.id, serverId: fx.server.id, name: "web", workingDirectory: "/tmp", deployCommand: "true" } });

    const res = await del(fx.server.id, fx.apiKey);
    expect(res.status).toBe(204);

    expect((await stack.api().get(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`)).status).toBe(404);
    expect((await stack.api().get(`/api/automation/v1/operations/${ran.body.operation_id as string}`).set("Authorization", `Bearer ${fx.token}`)).status).toBe(404);
    expect(await testPrisma().application.count({ where: { id: app.id } })).toBe(0);
    const event = await testPrisma().auditEvent.findFirstOrThrow({ where: { serverId: fx.server.id, type: "server.deleted" } });
    expect(event).toMatchObject({ tenantId: fx.tenant.id, data: { server_name: fx.server.name, operations_deleted: 1, by_api_key_id: expect.any(String) } });
    // The trail of what ran there is kept.
    expect(await testPrisma().auditEvent.count({ where: { operationId: ran.body.operation_id as string, type: "operation.created" } })).toBe(1);

    // Its runner is told, does not reconnect, and exits with "configuration error" (systemd does not restart it).
    await runner.waitForOutput(/token was revoked .*server was deleted/);
    expect((await runner.exited).code).toBe(78);

    // Gone for every later request.
    expect((await del(fx.server.id, fx.apiKey)).status).toBe(404);
    const after = await exec(fx, "true");
    expect(after.status).toBe(404);
    expect(after.body.detail).toMatch(/not found/);
  });

  it("is refused while one of its operations is running, and allowed once it has ended", async () => {
    const fx = await createFixture();
    const running = await createOperation(fx.tenant.id, fx.server.id, { status: "running" });
    const refused = await del(fx.server.id, fx.apiKey);
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toMatch(/1 operation in progress; cancel it or wait for it to end/);
    expect(await testPrisma().server.count({ where: { id: fx.server.id } })).toBe(1);

    await testPrisma().operation.update({ where: { id: running.id }, data: { status: "cancelled", completedAt: new Date() } });
    expect((await del(fx.server.id, fx.apiKey)).status).toBe(204);
  });

  it("keys scoped to it keep its id, and can still be edited with their list unchanged", async () => {
    const fx = await createFixture();
    const { server: other } = await createServer(fx.tenant.id);
    const scoped = [fx.server.id, other.id];
    const { key } = await createAutomationKey(fx.tenant.id, { allowedServerIds: scoped });
    expect((await del(fx.server.id, fx.apiKey)).status).toBe(204);

    const patch = (body: object) => stack.api().patch(`/api/v1/automation-keys/${key.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send(body);
    const unchanged = await patch({ name: "renamed", allowed_server_ids: scoped });
    expect(unchanged.status).toBe(200);
    expect(unchanged.body.allowed_server_ids).toEqual(scoped);
    // An id the key did not hold is still checked.
    const unknown = await patch({ allowed_server_ids: [...scoped, randomUUID()] });
    expect(unknown.status).toBe(422);
    expect(unknown.body.detail).toMatch(/allowed_server_ids\[2\]/);
  });

  it("is 404 for another tenant's server, which stays", async () => {
    const fx = await createFixture();
    const other = await createTenant();
    expect((await del(fx.server.id, other.apiKey)).status).toBe(404);
    expect(await testPrisma().server.count({ where: { id: fx.server.id } })).toBe(1);
  });

  it("an operation being recorded at that moment is answered 404, not 500", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id);
    // Hold the server's row as the delete does, so the exec gets past its lookups and waits at its insert.
    const lock = holdRowLock("servers", fx.server.id);
    const pending = exec(fx, "true").then((r) => r);
    await lock.blocked();
    await lock.finish((tx) => tx.server.delete({ where: { id: fx.server.id } }));
    const res = await pending;
    expect(res.status).toBe(404);
    expect(res.body.detail).toBe(`Server ${fx.server.id} not found`);
  });
});
