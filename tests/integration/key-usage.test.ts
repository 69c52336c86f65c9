import { randomUUID } from "node:crypto";
import { createLogger } from "@runbridge/common";
import { KeyUsageRecorder } from "../../apps/gateway/src/services/key-usage";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createTenant } from "../helpers/factories";

/** The gateway's last-used stamps: written behind the requests, every key of a batch in one statement. */
describe("key usage recorder", () => {
  afterAll(closeTestPrisma);

  it("writes the latest use of every key of a batch, and never moves a stamp backwards", async () => {
    const { tenant } = await createTenant();
    const keys = await Promise.all([1, 2, 3].map(() => createAutomationKey(tenant.id)));
    const [a, b, c] = keys.map((k) => k.key);
    if (!a || !b || !c) throw new Error("three keys expected");
    // Key c was already used later than the use about to be recorded (by another replica).
    const later = new Date(Date.now() + 60_000);
    await testPrisma().automationKey.update({ where: { id: c.id }, data: { lastUsedAt: later, lastUsedIp: "10.0.0.9" } });

    // A very long interval: only the explicit flush writes.
    const recorder = new KeyUsageRecorder(testPrisma(), createLogger("test", "error"), 3_600_000);
    recorder.record(a.id, "10.0.0.1");
    recorder.record(b.id, "10.0.0.2");
    recorder.record(a.id, "10.0.0.3"); // the latest use of a wins
    recorder.record(c.id, "10.0.0.4");
    // A key deleted meanwhile is skipped, without failing the rest of the batch.
    recorder.record(randomUUID(), "10.0.0.5");
    const before = await testPrisma().automationKey.findUniqueOrThrow({ where: { id: a.id } });
    await recorder.close();

    const rows = new Map((await testPrisma().automationKey.findMany({ where: { id: { in: [a.id, b.id, c.id] } } })).map((r) => [r.id, r]));
    expect(rows.get(a.id)).toMatchObject({ lastUsedIp: "10.0.0.3" });
    expect(rows.get(a.id)?.lastUsedAt).toBeInstanceOf(Date);
    expect(rows.get(b.id)).toMatchObject({ lastUsedIp: "10.0.0.2" });
    expect(rows.get(b.id)?.lastUsedAt).toBeInstanceOf(Date);
    expect(rows.get(c.id)).toMatchObject({ lastUsedAt: later, lastUsedIp: "10.0.0.9" });
    // "Settings changed" is not touched by a use.
    expect(rows.get(a.id)?.updatedAt).toEqual(before.updatedAt);
  });
});
