import { Pool } from "pg";
import { OperationStore } from "@runbridge/db";
import { OperationCounts } from "../../apps/gateway/src/services/operation-counts";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";
import { createAutomationKey, createFixture, createOperation } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

const REFRESH_SECONDS = 2;

/**
 * `operation_count` on automation keys: the dashboard re-reads the key list
 * every few seconds, so a key's older operations are counted once per
 * OPERATION_COUNT_REFRESH_SECONDS and kept, and only the newer ones are
 * counted on each call. New operations show at once; deleted ones (retention,
 * a deleted server) within the refresh interval.
 */
describe("automation key operation counts", () => {
  const suite = useStack({ dispatchers: 0, gateway: { OPERATION_COUNT_REFRESH_SECONDS: String(REFRESH_SECONDS) } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
  });

  const count = async () => {
    const one = await stack.api().get(`/api/v1/automation-keys/${fx.key.id}`).set("Authorization", `Bearer ${fx.apiKey}`);
    const list = await stack.api().get("/api/v1/automation-keys").set("Authorization", `Bearer ${fx.apiKey}`);
    expect(one.status).toBe(200);
    expect(list.status).toBe(200);
    const listed = (list.body as { data: { id: string; operation_count: number }[] }).data.find((k) => k.id === fx.key.id);
    expect(listed?.operation_count).toBe((one.body as { operation_count: number }).operation_count);
    return (one.body as { operation_count: number }).operation_count;
  };
  const operation = (ageMs: number) => createOperation(fx.tenant.id, fx.server.id, { automationKeyId: fx.key.id, status: "completed", createdAt: new Date(Date.now() - ageMs) });

  it("counts new operations at once and deleted older ones once their count is refreshed", async () => {
    const older = [];
    for (let i = 0; i < 4; i++) older.push(await operation(3_600_000));
    // Another key's operations are not counted.
    await createOperation(fx.tenant.id, fx.server.id, { automationKeyId: null });
    expect(await count()).toBe(4);

    const recent = [await operation(0), await operation(0)];
    expect(await count()).toBe(6);

    // Older operations deleted (as retention does): the kept count of older ones stands until its refresh.
    await testPrisma().operation.deleteMany({ where: { id: { in: older.slice(0, 2).map((o) => o.id) } } });
    expect(await count()).toBe(6);
    await new Promise((r) => setTimeout(r, REFRESH_SECONDS * 1000 + 200));
    expect(await count()).toBe(4);

    // Newer ones are counted on every call: a deletion among them shows at once.
    await testPrisma().operation.delete({ where: { id: recent[0]?.id } });
    expect(await count()).toBe(3);
  });
});

/** The real store, with its full counts of a key's history counted as they are asked for. */
class CountedStore extends OperationStore {
  fullCounts: string[][] = [];
  override async countByKeyBefore(keyIds: string[], settleSeconds: number) {
    this.fullCounts.push([...keyIds].sort());
    return super.countByKeyBefore(keyIds, settleSeconds);
  }
}

describe("automation key operation counts asked for together", () => {
  let pool: Pool;
  let store: CountedStore;
  let fx: Awaited<ReturnType<typeof createFixture>>;
  let otherKeyId: string;

  beforeAll(async () => {
    pool = new Pool({ connectionString: testDatabaseUrl(), max: 4 });
    store = new CountedStore(pool);
    fx = await createFixture();
    otherKeyId = (await createAutomationKey(fx.tenant.id)).key.id;
    for (let i = 0; i < 3; i++) {
      await createOperation(fx.tenant.id, fx.server.id, { automationKeyId: fx.key.id, status: "completed", createdAt: new Date(Date.now() - 3_600_000) });
    }
    await createOperation(fx.tenant.id, fx.server.id, { automationKeyId: otherKeyId, status: "completed", createdAt: new Date(Date.now() - 3_600_000) });
  });
  afterAll(async () => {
    await pool.end();
    await closeTestPrisma();
  });

  it("count a key's history once for every dashboard that asks while it is being counted", async () => {
    const counts = new OperationCounts(store, 60_000);
    const answers = await Promise.all([
      counts.get([fx.key.id]),
      counts.get([fx.key.id]),
      counts.get([fx.key.id, otherKeyId]),
      counts.get([otherKeyId, fx.key.id]),
      counts.get([fx.key.id]),
    ]);
    expect(answers.map((a) => Object.fromEntries(a))).toEqual([
      { [fx.key.id]: 3 },
      { [fx.key.id]: 3 },
      { [fx.key.id]: 3, [otherKeyId]: 1 },
      { [otherKeyId]: 1, [fx.key.id]: 3 },
      { [fx.key.id]: 3 },
    ]);
    // The first call counts the first key; the third finds it in flight and counts only the other.
    expect(store.fullCounts).toEqual([[fx.key.id], [otherKeyId]]);

    // Once counted, kept until the refresh interval: no full count at all.
    expect(Object.fromEntries(await counts.get([otherKeyId, fx.key.id]))).toEqual({ [otherKeyId]: 1, [fx.key.id]: 3 });
    expect(store.fullCounts).toHaveLength(2);
  });
});
