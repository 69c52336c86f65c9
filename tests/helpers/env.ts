import { randomBytes } from "node:crypto";

export function testDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/runbridge_test";
}

export function testRedisUrl(): string {
  return process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
}

/** Fixed for the whole run so every process of a test can open what another sealed. */
export const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString("base64");

/** A fresh Redis prefix per stack, so test files never see each other's queues or presence. */
export function freshPrefix(label = "t"): string {
  return `rbtest-${label}-${randomBytes(4).toString("hex")}`;
}
