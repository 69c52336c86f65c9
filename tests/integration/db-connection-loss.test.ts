import { randomUUID } from "node:crypto";
import { createDb, type Db } from "@runbridge/db";
import { closeTestPrisma, terminateOwnBackend } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";

/**
 * A transaction whose connection dies (PostgreSQL restarted, a failover, pg_terminate_backend) must give
 * its pool slot back: Prisma ends it by sending COMMIT or ROLLBACK, which then fails, and the adapter
 * released the connection only after them. Each such transaction held a slot for good, until a process
 * answered 503 to everything with PostgreSQL healthy.
 */
describe("a transaction that loses its connection", () => {
  const POOL = 2;
  let db: Db;
  beforeAll(() => {
    db = createDb(testDatabaseUrl(), { max: POOL, connectionTimeoutMillis: 2000 });
  });
  afterAll(async () => {
    await db.close();
    await closeTestPrisma();
  });

  async function killOwnBackend(tx: Pick<Db["prisma"], "$queryRaw">): Promise<void> {
    expect(await terminateOwnBackend(tx)).toBe(true);
  }

  it("gives its slot back whether it dies before a statement (ROLLBACK fails) or before COMMIT", async () => {
    for (let i = 0; i < POOL + 1; i++) {
      await expect(
        db.prisma.$transaction(async (tx) => {
          await killOwnBackend(tx);
          await tx.$queryRaw`SELECT 1`;
        }),
      ).rejects.toThrow();
      await expect(db.prisma.$transaction(async (tx) => killOwnBackend(tx))).rejects.toThrow();
    }
    // With the slots held, this waited connectionTimeoutMillis and failed.
    expect(await db.prisma.$queryRaw<Array<{ one: number }>>`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    expect(await db.operations.findById(randomUUID())).toBeNull();
  });
});
