import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "@prisma/client";

export { Prisma, PrismaClient } from "@prisma/client";
export type { Operation, Server, Tenant, AutomationKey, ApiKey, AuditEvent, Application, Deployment, RegistryCredential } from "@prisma/client";

export interface DbOptions {
  /** Pool size per process. */
  max?: number;
  /** Fail a query that waits this long for a connection, so callers can answer 503 instead of hanging. */
  connectionTimeoutMillis?: number;
  /** Server-side statement timeout. */
  statementTimeoutMs?: number;
}

/** Prisma over node-postgres (no native query engine). */
export function createPrisma(databaseUrl: string, opts: DbOptions = {}): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 5000,
    statement_timeout: opts.statementTimeoutMs ?? 15000,
  });
  return new PrismaClient({ adapter });
}
