import { randomUUID } from "node:crypto";
import { createDb, type Db } from "@runbridge/db";
import { isInfrastructureDown } from "@runbridge/common";
import { closeTestPrisma, terminateOwnBackend } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";

/**
 * Which PostgreSQL failures the gateway answers 503 (retry) rather than 500 (a bug): the errors as
 * PostgreSQL, node-postgres and Prisma really raise them. A raw query's failure comes wrapped by Prisma
 * (P2010, PostgreSQL's code inside meta.driverAdapterError); read there, a statement timeout, a killed
 * backend or a write to a standby were answered 500 "Internal server error", so CI clients did not retry.
 */
describe("errors that mean PostgreSQL is unavailable or too slow", () => {
  let db: Db;
  beforeAll(() => {
    db = createDb(testDatabaseUrl(), { max: 3, statementTimeoutMs: 200 });
  });
  afterAll(async () => {
    await db.close();
    await closeTestPrisma();
  });

  const failure = (p: Promise<unknown>) => p.then(() => expect("to fail").toBe("failed"), (e: unknown) => e);

  it("a statement timeout, of a raw query and inside a transaction", async () => {
    expect(isInfrastructureDown(await failure(db.prisma.$queryRaw`SELECT pg_sleep(1)`))).toBe(true);
    expect(isInfrastructureDown(await failure(db.prisma.$transaction(async (tx) => tx.$executeRaw`SELECT pg_sleep(1)`)))).toBe(true);
  });

  it("a backend terminated mid-transaction (a restart or failover), for a raw and a model query", async () => {
    for (const query of [(tx: Pick<Db["prisma"], "$queryRaw">) => tx.$queryRaw`SELECT 1`, (tx: Pick<Db["prisma"], "tenant">) => tx.tenant.findFirst()]) {
      const err = await failure(
        db.prisma.$transaction(async (tx) => {
          await terminateOwnBackend(tx);
          await query(tx);
        }),
      );
      expect(isInfrastructureDown(err)).toBe(true);
    }
  });

  it("a write that reached a read-only server (a standby during a failover)", async () => {
    const err = await failure(
      db.prisma.$transaction(async (tx) => {
        await tx.$executeRaw`SET TRANSACTION READ ONLY`;
        await tx.$executeRaw`UPDATE tenants SET name = name WHERE id = ${randomUUID()}::uuid`;
      }),
    );
    expect(isInfrastructureDown(err)).toBe(true);
  });

  it("a transaction that outlived its time limit", async () => {
    const err = await failure(
      db.prisma.$transaction(
        async (tx) => {
          await new Promise((r) => setTimeout(r, 300));
          await tx.$queryRaw`SELECT 1`;
        },
        { timeout: 100 },
      ),
    );
    expect(isInfrastructureDown(err)).toBe(true);
  });

  it("but not a bug or a bad request: a syntax error, a division by zero, an invalid uuid, a constraint", async () => {
    expect(isInfrastructureDown(await failure(db.prisma.$queryRawUnsafe("SELEC 1")))).toBe(false);
    expect(isInfrastructureDown(await failure(db.prisma.$queryRaw`SELECT 1/0`))).toBe(false);
    expect(isInfrastructureDown(await failure(db.operations.findById("not-a-uuid")))).toBe(false);
    expect(isInfrastructureDown(await failure(db.prisma.server.create({ data: { tenantId: randomUUID(), name: "x", runnerTokenHash: randomUUID() } })))).toBe(false);
    expect(isInfrastructureDown(new Error("boom"))).toBe(false);
  });
});
