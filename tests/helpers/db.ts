import { createPrisma, type PrismaClient } from "@runbridge/db";
import { testDatabaseUrl } from "./env";

let shared: PrismaClient | null = null;

/** One Prisma client per test file for factories and assertions. */
export function testPrisma(): PrismaClient {
  shared ??= createPrisma(testDatabaseUrl(), { max: 4 });
  return shared;
}

export async function closeTestPrisma(): Promise<void> {
  await shared?.$disconnect();
  shared = null;
}
