import { Prisma } from "@prisma/client";

/**
 * An application's `allowed_env_overrides` is a nullable JSON column (Prisma
 * has no nullable list, and null — any name but the refused ones — differs
 * from [] — no overrides). Only the management API writes it, always a list of
 * strings or SQL NULL; these two functions are the only readers and writers.
 */

/** The column as the API and the deploy check see it. */
export function readEnvAllowlist(stored: Prisma.JsonValue | null): string[] | null {
  if (!Array.isArray(stored)) return null;
  return stored.filter((entry): entry is string => typeof entry === "string");
}

/** The value to write: SQL NULL for null (Prisma's JSON null would be the JSON value `null`). */
export function envAllowlistData(list: string[] | null): Prisma.InputJsonValue | typeof Prisma.DbNull {
  return list === null ? Prisma.DbNull : list;
}
