import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { createPrisma, type Operation, type Prisma, type PrismaClient } from "@runbridge/db";
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

/**
 * Holds one row's lock (SELECT ... FOR UPDATE) in a transaction of the test's
 * own, to make a race deterministic: `blocked()` resolves once another session
 * waits on that lock; `finish(work)` then runs `work` in the holding
 * transaction (e.g. deleting the row) and commits.
 */
export function holdRowLock(table: "servers" | "applications" | "operations", id: string) {
  let finishWith!: (work: (tx: Prisma.TransactionClient) => Promise<unknown>) => void;
  const work = new Promise<(tx: Prisma.TransactionClient) => Promise<unknown>>((resolve) => (finishWith = resolve));
  let gotPid!: (pid: number) => void;
  const holderPid = new Promise<number>((resolve) => (gotPid = resolve));
  const done = testPrisma().$transaction(
    async (tx) => {
      await tx.$queryRawUnsafe(`SELECT id FROM ${table} WHERE id = $1::uuid FOR UPDATE`, id);
      const [me] = await tx.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      gotPid(me?.pid ?? -1);
      await (await work)(tx);
    },
    { timeout: 20_000 },
  );
  return {
    async blocked(): Promise<void> {
      const pid = await holderPid;
      await waitFor(
        async () => {
          const rows = await testPrisma().$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM pg_stat_activity WHERE ${pid}::int = ANY(pg_blocking_pids(pid))`;
          return Number(rows[0]?.n ?? 0) > 0;
        },
        10_000,
        `another session to wait on the ${table} row`,
      );
    },
    finish(then: (tx: Prisma.TransactionClient) => Promise<unknown>): Promise<void> {
      finishWith(then);
      return done;
    },
  };
}

/**
 * Ends the backend of the connection `tx` runs on, from another connection, as a PostgreSQL restart or
 * a failover would: whether PostgreSQL says it ended it.
 */
export async function terminateOwnBackend(tx: Pick<PrismaClient, "$queryRaw">): Promise<boolean> {
  const [row] = await tx.$queryRaw<Array<{ pid: number }>>`SELECT pg_backend_pid() AS pid`;
  const [killed] = await testPrisma().$queryRaw<Array<{ ok: boolean }>>`SELECT pg_terminate_backend(${row?.pid}::int) AS ok`;
  return killed?.ok === true;
}

/**
 * A database of the test's own beside the test database (named `rbmig_…`, so a leftover is easy to
 * tell), for tests that break its migration history. Not migrated; `drop()` ends its sessions too.
 */
export async function scratchDatabase(label: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `rbmig_${label}_${randomBytes(4).toString("hex")}`;
  const onServer = async (sql: string) => {
    const admin = new URL(testDatabaseUrl());
    admin.pathname = "/postgres";
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await onServer(`CREATE DATABASE "${name}"`);
  const url = new URL(testDatabaseUrl());
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onServer(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}
