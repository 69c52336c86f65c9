import request from "supertest";
import { createLogger } from "@runbridge/common";
import type { Operation } from "@runbridge/db";
import type { DispatcherConfig } from "../../apps/dispatcher/src/config";
import type { DispatcherContext } from "../../apps/dispatcher/src/context";
import { dispatcherRegistry } from "../../apps/dispatcher/src/metrics";
import { RETENTION_BATCH, Retention } from "../../apps/dispatcher/src/retention";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createOperation, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/**
 * Retention against the real database. The ages stay under the defaults (90 days of operations,
 * 365 of audit events) on purpose: dispatchers of test files running alongside prune with the
 * defaults, and must not be the ones deleting this file's rows.
 */
const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY);

function retention(operationDays: number, auditDays: number): Retention {
  const config = { OPERATION_RETENTION_DAYS: operationDays, AUDIT_RETENTION_DAYS: auditDays } as DispatcherConfig;
  const ctx = { config, prisma: testPrisma(), logger: createLogger("test", "error") } as unknown as DispatcherContext;
  return new Retention(ctx);
}

async function exists(op: Operation): Promise<boolean> {
  return (await testPrisma().operation.count({ where: { id: op.id } })) === 1;
}

/** A tenant whose rows straddle a 30-day operation retention and a 60-day audit retention. */
async function seed() {
  const { tenant, apiKey } = await createTenant();
  const { server } = await createServer(tenant.id);
  const p = testPrisma();
  const ops = {
    oldCompleted: await createOperation(tenant.id, server.id, { status: "completed", exitCode: 0, stdout: "x".repeat(10_000), createdAt: ago(40), completedAt: ago(40) }),
    oldFailed: await createOperation(tenant.id, server.id, { status: "failed", error: "runner offline", createdAt: ago(40), completedAt: ago(40) }),
    // Never deleted, whatever its age: it has not ended.
    oldRunning: await createOperation(tenant.id, server.id, { status: "running", createdAt: ago(40), deliverBy: ago(40) }),
    recent: await createOperation(tenant.id, server.id, { status: "completed", exitCode: 0, createdAt: ago(10), completedAt: ago(10) }),
    olderDeploy: await createOperation(tenant.id, server.id, { type: "deploy", status: "completed", exitCode: 0, createdAt: ago(45), completedAt: ago(45) }),
    latestDeploy: await createOperation(tenant.id, server.id, { type: "deploy", status: "completed", exitCode: 0, createdAt: ago(41), completedAt: ago(41) }),
  };
  const app = await p.application.create({ data: { tenantId: tenant.id, serverId: server.id, name: "web", workingDirectory: "/srv/web", deployCommand: "true" } });
  await p.deployment.create({ data: { applicationId: app.id, operationId: ops.olderDeploy.id, commitRef: "aaa", status: "completed", createdAt: ago(45) } });
  await p.deployment.create({ data: { applicationId: app.id, operationId: ops.latestDeploy.id, commitRef: "bbb", status: "completed", createdAt: ago(41) } });
  const oldEvent = await p.auditEvent.create({ data: { tenantId: tenant.id, type: "operation.created", createdAt: ago(70) } });
  const keptEvent = await p.auditEvent.create({ data: { tenantId: tenant.id, type: "operation.created", createdAt: ago(50) } });
  return { tenant, apiKey, server, app, ops, oldEvent, keptEvent };
}

afterAll(async () => {
  await closeTestPrisma();
});

describe("retention of operations and audit events", () => {
  it("deletes ended operations and audit events past their retention and keeps the rest", async () => {
    const s = await seed();
    const counts = await retention(30, 60).pruneOnce();

    expect(counts.operations.get(s.tenant.id)).toBe(3);
    expect(counts.auditEvents.get(s.tenant.id)).toBe(1);
    expect(await exists(s.ops.oldCompleted)).toBe(false);
    expect(await exists(s.ops.oldFailed)).toBe(false);
    expect(await exists(s.ops.olderDeploy)).toBe(false);
    expect(await exists(s.ops.oldRunning)).toBe(true);
    expect(await exists(s.ops.recent)).toBe(true);
    // The application's latest deployment stays, older than the retention as it is.
    expect(await exists(s.ops.latestDeploy)).toBe(true);
    const deployments = await testPrisma().deployment.findMany({ where: { applicationId: s.app.id } });
    expect(deployments.map((d) => d.commitRef)).toEqual(["bbb"]);
    const events = await testPrisma().auditEvent.findMany({ where: { tenantId: s.tenant.id }, orderBy: { createdAt: "asc" } });
    expect(events.map((e) => e.id)).toEqual([s.keptEvent.id, expect.any(String)]);
    expect(events[1]).toMatchObject({
      type: "retention.pruned",
      data: { operations_deleted: 3, audit_events_deleted: 1, operation_retention_days: 30, audit_retention_days: 60 },
    });

    // Nothing left to delete: no second event.
    const again = await retention(30, 60).pruneOnce();
    expect(again.operations.get(s.tenant.id)).toBeUndefined();
    expect(await testPrisma().auditEvent.count({ where: { tenantId: s.tenant.id, type: "retention.pruned" } })).toBe(1);
  });

  it("keeps everything of a kind whose retention is 0", async () => {
    const s = await seed();
    const counts = await retention(0, 0).pruneOnce();
    expect(counts.operations.get(s.tenant.id)).toBeUndefined();
    expect(await testPrisma().operation.count({ where: { tenantId: s.tenant.id } })).toBe(6);
    expect(await testPrisma().auditEvent.count({ where: { tenantId: s.tenant.id } })).toBe(2);

    await retention(0, 60).pruneOnce();
    expect(await testPrisma().operation.count({ where: { tenantId: s.tenant.id } })).toBe(6);
    expect(await testPrisma().auditEvent.count({ where: { tenantId: s.tenant.id, type: "operation.created" } })).toBe(1);
  });

  it("prunes audit events even when pruning operations fails, and counts each table's pass as ok or failed", async () => {
    const s = await seed();
    const passes = async () => {
      const text = await dispatcherRegistry.metrics();
      const value = (table: string, outcome: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`runbridge_dispatcher_retention_passes_total{table="${table}",outcome="${outcome}",`));
        if (!line) throw new Error(`no retention_passes_total series for ${table}/${outcome}`);
        return Number(line.split(" ").pop());
      };
      return { opsFailed: value("operations", "failed"), auditOk: value("audit_events", "ok") };
    };
    const before = await passes();
    // PostgreSQL itself refuses to delete this tenant's operations (as a statement timeout would fail the batch).
    const fn = `rb_test_refuse_delete_${s.tenant.id.replace(/-/g, "")}`;
    await testPrisma().$executeRawUnsafe(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
    await testPrisma().$executeRawUnsafe(`CREATE TRIGGER ${fn} BEFORE DELETE ON operations FOR EACH ROW WHEN (OLD.tenant_id = '${s.tenant.id}') EXECUTE FUNCTION ${fn}()`);
    try {
      await expect(retention(30, 60).pruneOnce()).rejects.toThrow(/refused by the test/);
    } finally {
      await testPrisma().$executeRawUnsafe(`DROP TRIGGER ${fn} ON operations`);
      await testPrisma().$executeRawUnsafe(`DROP FUNCTION ${fn}()`);
    }
    expect(await exists(s.ops.oldCompleted)).toBe(true);
    // The audit events past their retention went all the same, and the trail says so.
    expect(await testPrisma().auditEvent.count({ where: { id: s.oldEvent.id } })).toBe(0);
    expect(await testPrisma().auditEvent.count({ where: { id: s.keptEvent.id } })).toBe(1);
    expect(await testPrisma().auditEvent.count({ where: { tenantId: s.tenant.id, type: "retention.pruned" } })).toBe(1);
    const after = await passes();
    expect(after.opsFailed).toBe(before.opsFailed + 1);
    expect(after.auditOk).toBe(before.auditOk + 1);
  });

  it("works through a backlog of many batches, with two dispatchers pruning at once", async () => {
    const { tenant } = await createTenant();
    const { server } = await createServer(tenant.id);
    const backlog = RETENTION_BATCH * 2 + 137;
    await testPrisma().operation.createMany({
      data: Array.from({ length: backlog }, (_, i) => ({
        tenantId: tenant.id,
        serverId: server.id,
        type: "exec",
        command: `echo ${i}`,
        status: "completed",
        exitCode: 0,
        timeoutSeconds: 60,
        deliverBy: ago(40),
        createdAt: ago(40),
        completedAt: ago(40),
        redisPrefix: "test-fixture-no-dispatcher",
      })),
    });
    const [a, b] = await Promise.all([retention(30, 0).pruneOnce(), retention(30, 0).pruneOnce()]);
    // Each row deleted once, by one of them (SKIP LOCKED), none left.
    expect((a.operations.get(tenant.id) ?? 0) + (b.operations.get(tenant.id) ?? 0)).toBe(backlog);
    expect(await testPrisma().operation.count({ where: { tenantId: tenant.id } })).toBe(0);
    const recorded = await testPrisma().auditEvent.findMany({ where: { tenantId: tenant.id, type: "retention.pruned" } });
    expect(recorded.reduce((sum, e) => sum + (e.data as { operations_deleted: number }).operations_deleted, 0)).toBe(backlog);
  });
});

describe("a dispatcher prunes at start", () => {
  let stack: TestStack;
  afterAll(async () => {
    await stack?.stop();
  });

  it("with the retention it is configured with, and the API no longer finds what it deleted", async () => {
    const s = await seed();
    const { token } = await createAutomationKey(s.tenant.id);
    stack = await TestStack.start({ dispatcher: { OPERATION_RETENTION_DAYS: "30", AUDIT_RETENTION_DAYS: "60" } });
    await waitFor(async () => !(await exists(s.ops.oldCompleted)), 15_000, "the dispatcher to delete the old operation");
    await waitFor(async () => (await testPrisma().auditEvent.count({ where: { tenantId: s.tenant.id, type: "retention.pruned" } })) === 1, 15_000, "its audit event");
    expect(await exists(s.ops.recent)).toBe(true);
    expect(await exists(s.ops.latestDeploy)).toBe(true);
    expect(await testPrisma().auditEvent.count({ where: { id: s.oldEvent.id } })).toBe(0);

    const gone = await request(stack.url).get(`/api/automation/v1/operations/${s.ops.oldCompleted.id}`).set("Authorization", `Bearer ${token}`);
    expect(gone.status).toBe(404);
    expect(gone.body.detail).toEqual(expect.any(String));
    const kept = await request(stack.url).get(`/api/automation/v1/operations/${s.ops.recent.id}`).set("Authorization", `Bearer ${token}`);
    expect(kept.status).toBe(200);
    const history = await request(stack.url).get(`/api/v1/applications/${s.app.id}/deployments`).set("Authorization", `Bearer ${s.apiKey}`);
    expect(history.status).toBe(200);
    expect((history.body as { data: { commit_ref: string }[] }).data.map((d) => d.commit_ref)).toEqual(["bbb"]);
  });
});
