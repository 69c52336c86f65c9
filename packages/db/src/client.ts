import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "@prisma/client";
import { Pool } from "pg";
import { OperationStore } from "./operation-store";

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

function poolConfig(databaseUrl: string, opts: DbOptions) {
  const statementTimeoutMs = opts.statementTimeoutMs ?? 15000;
  return {
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 5000,
    statement_timeout: statementTimeoutMs,
    // The server ends a slow statement itself; this bounds the wait for a server that no longer
    // answers at all (a half-open connection after a partition or failover), which the statement
    // timeout cannot. The pool drops a connection whose query failed.
    query_timeout: statementTimeoutMs + 5000,
    // Finds such a connection while it is idle in the pool, too.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** Prisma over node-postgres (no native query engine). */
export function createPrisma(databaseUrl: string, opts: DbOptions = {}): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(poolConfig(databaseUrl, opts)) });
}

export interface Db {
  prisma: PrismaClient;
  /** The operation hot path in plain SQL, on the same connection pool. */
  operations: OperationStore;
  close: () => Promise<void>;
}

/** Prisma and the operation store sharing one pool (the services' way in). */
export function createDb(databaseUrl: string, opts: DbOptions = {}): Db {
  const pool = new Pool(poolConfig(databaseUrl, opts));
  // An idle client losing its server (PostgreSQL restarting) must not crash the process.
  pool.on("error", () => undefined);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    prisma,
    operations: new OperationStore(pool),
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
