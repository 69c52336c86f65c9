import { createPrisma, type PrismaClient } from "@runbridge/db";
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
