import { createPrisma, type Operation, type PrismaClient } from "@runbridge/db";
import { waitFor } from "./processes";
import { testDatabaseUrl } from "./env";

let shared: PrismaClient | null = null;
let override: string | null = null;

/** One Prisma client per test file for factories and assertions. */
export function testPrisma(): PrismaClient {
  shared ??= createPrisma(override ?? testDatabaseUrl(), { max: 4 });
  return shared;
}

/** Points factories and assertions of this test file at another database (e.g. a private PostgreSQL). */
export async function useTestDatabase(url: string): Promise<void> {
  await closeTestPrisma();
  override = url;
}

export async function closeTestPrisma(): Promise<void> {
  await shared?.$disconnect();
  shared = null;
}

/** The operation's row once it has left `running` (whatever ended it). */
export function waitUntilEnded(operationId: string, timeoutMs: number, what = "the operation to end"): Promise<Operation> {
  return waitFor(async () => {
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: operationId } });
    return row.status === "running" ? null : row;
  }, timeoutMs, what);
}
