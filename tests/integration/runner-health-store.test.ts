import { createDb, type Db } from "@runbridge/db";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";
import { createFixture } from "../helpers/factories";
import type { Fixture } from "../helpers/suite";

/**
 * The statement that records a runner connection's health on its server (runner-health-sql.ts), against
 * PostgreSQL: which connection's report counts (by admission number), the time the problem began, and the
 * audit events of entering and leaving the degraded state — whatever order the writes land in.
 */
describe("runner health on the server's row", () => {
  let db: Db;
  let fx: Fixture;
  beforeAll(() => {
    db = createDb(testDatabaseUrl(), { max: 2 });
  });
  beforeEach(async () => {
    fx = await createFixture();
  });
  afterAll(async () => {
    await db.close();
    await closeTestPrisma();
  });

  const row = () => testPrisma().server.findUniqueOrThrow({ where: { id: fx.server.id } });
  const events = async () =>
    (await testPrisma().auditEvent.findMany({ where: { serverId: fx.server.id }, orderBy: { createdAt: "asc" } })).map((e) => ({ type: e.type, data: e.data, clientIp: e.clientIp }));

  it("takes a connection's report only while no newer connection's report holds the row", async () => {
    expect(await db.operations.runnerAdmitted(fx.server.id, "1.2.3", { problem: "disk full", seq: 10, clientIp: "192.0.2.1" })).toBe(true);
    expect(await row()).toMatchObject({ runnerVersion: "1.2.3", runnerProblem: "disk full", runnerHealthSeq: 10n, lastSeenAt: expect.any(Date) });
    // The same connection again, later: counts.
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: "read-only", seq: 10 })).toBe(true);
    // A newer connection (the runner reconnected through another dispatcher) says it is fine.
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: null, seq: 11 })).toBe(true);
    // The older connection's write, landing late (still open a moment, or slow): changes nothing.
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: "disk full", seq: 10 })).toBe(false);
    // Nor does its admission's health part, which still records it was seen.
    const before = (await row()).lastSeenAt as Date;
    expect(await db.operations.runnerAdmitted(fx.server.id, "1.0.0", { problem: "stale", seq: 9 })).toBe(false);
    // Nor its version: the row keeps the newer connection's (the runner as it runs now, after an upgrade).
    expect(await row()).toMatchObject({ runnerVersion: "1.2.3", runnerProblem: null, runnerProblemSince: null, runnerHealthSeq: 11n });
    expect(((await row()).lastSeenAt as Date).getTime()).toBeGreaterThanOrEqual(before.getTime());
  });

  it("ranks a connection without an admission number below every numbered one, as the dispatchers do", async () => {
    // Before any numbered report: counts.
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: "unnumbered", seq: undefined })).toBe(true);
    expect(await row()).toMatchObject({ runnerProblem: "unnumbered", runnerHealthSeq: null });
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: null, seq: 1 })).toBe(true);
    // Once a numbered connection's report holds the row: not.
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: "unnumbered again" })).toBe(false);
    expect(await row()).toMatchObject({ runnerProblem: null, runnerHealthSeq: 1n });
    // Nor does an unnumbered connection's admission, whichever way it would move the row: the problem and its
    // `since` stay together.
    expect(await db.operations.runnerAdmitted(fx.server.id, null, { problem: "unnumbered at admission" })).toBe(false);
    expect(await row()).toMatchObject({ runnerProblem: null, runnerProblemSince: null, runnerHealthSeq: 1n });
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: "disk full", seq: 1 })).toBe(true);
    const since = (await row()).runnerProblemSince;
    expect(since).toBeInstanceOf(Date);
    expect(await db.operations.runnerAdmitted(fx.server.id, null, { problem: null })).toBe(false);
    expect(await row()).toMatchObject({ runnerProblem: "disk full", runnerProblemSince: since, runnerHealthSeq: 1n });
  });

  it("keeps when the problem began while it lasts, and audits entering and leaving it once each", async () => {
    await db.operations.runnerAdmitted(fx.server.id, null, { problem: "disk full", seq: 1, clientIp: "192.0.2.1" });
    const since = (await row()).runnerProblemSince;
    expect(since).toBeInstanceOf(Date);
    // Another cause, and the runner reconnecting with it: the same episode.
    await db.operations.recordRunnerHealth(fx.server.id, { problem: "read-only", seq: 1, clientIp: "192.0.2.1" });
    await db.operations.runnerAdmitted(fx.server.id, null, { problem: "read-only", seq: 2, clientIp: "192.0.2.2" });
    expect(await row()).toMatchObject({ runnerProblem: "read-only", runnerProblemSince: since });
    await db.operations.recordRunnerHealth(fx.server.id, { problem: null, seq: 2, clientIp: "192.0.2.2" });
    // Said again: nothing more to audit.
    await db.operations.recordRunnerHealth(fx.server.id, { problem: null, seq: 2, clientIp: "192.0.2.2" });
    expect(await row()).toMatchObject({ runnerProblem: null, runnerProblemSince: null });
    expect(await events()).toEqual([
      { type: "runner.degraded", data: { problem: "disk full", client_ip: "192.0.2.1" }, clientIp: "192.0.2.1" },
      { type: "runner.recovered", data: { problem: "read-only", problem_since: expect.any(String), client_ip: "192.0.2.2" }, clientIp: "192.0.2.2" },
    ]);
    const recovered = (await events())[1]?.data as { problem_since: string };
    expect(new Date(recovered.problem_since).getTime()).toBe(since?.getTime());
  });

  it("writes nothing for a server that is gone", async () => {
    await testPrisma().server.delete({ where: { id: fx.server.id } });
    expect(await db.operations.recordRunnerHealth(fx.server.id, { problem: "disk full", seq: 1 })).toBe(false);
    expect(await db.operations.runnerAdmitted(fx.server.id, null, { problem: "disk full", seq: 1 })).toBe(false);
    expect(await events()).toEqual([]);
  });
});
