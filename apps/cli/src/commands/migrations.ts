import Joi from "joi";
import { commonEnv, parseConfig } from "@runbridge/common";
import { createPrisma, type PrismaClient } from "@runbridge/db";
import { ExitCode } from "../client/exit-codes";

export const MIGRATIONS_USAGE = `usage: runbridge migrations rolled-back NAME

rolled-back marks the failed migration NAME (one that started and never
finished) rolled back, so that the next migrate applies it again: what
\`prisma migrate resolve --rolled-back NAME\` does, which needs the native
schema engine this installation does not have. Drop what the failed migration
left behind first (a CONCURRENTLY migration's INVALID index: DROP INDEX
CONCURRENTLY "…"), then migrate again (pnpm db:migrate; with compose,
docker compose run --rm migrate). A finished migration is never changed.
Needs DATABASE_URL. Exits 0 once marked; 64 usage; 65 refused (no failed
migration of that name, or a migrate is running), nothing changed.
`;

const envSchema = Joi.object({ DATABASE_URL: commonEnv.DATABASE_URL });

/**
 * The key of the advisory lock `prisma migrate deploy` holds while it runs. A CONCURRENTLY migration
 * may run for minutes with its row unfinished, just like a failed one; marking it rolled back then
 * would make the next migrate build its index a second time.
 */
const PRISMA_MIGRATE_LOCK = 72707369;

interface MigrationRow {
  migration_name: string;
  started_at: Date;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

type Marked = { refused: string } | { rows: MigrationRow[] };

export async function migrationsCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "help" || sub === "--help" || sub === "-h" || rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(MIGRATIONS_USAGE);
    return 0;
  }
  if (sub !== "rolled-back") return usage(sub ? `unknown migrations command "${sub}"` : "migrations needs rolled-back");
  const [name, ...extra] = rest;
  if (!name || name.startsWith("-") || extra.length > 0) return usage("give exactly one migration name");
  const { DATABASE_URL } = parseConfig<{ DATABASE_URL: string }>("runbridge migrations", envSchema, process.env);
  const prisma = createPrisma(DATABASE_URL, { max: 1 });
  try {
    const marked = await markRolledBack(prisma, name);
    if ("refused" in marked) return refuse(marked.refused);
    if (marked.rows.length === 0) return refuse(await whyNotFailed(prisma, name));
    const started = marked.rows.map((r) => r.started_at.toISOString()).join(", ");
    process.stdout.write(`runbridge: marked migration ${name} (started ${started}, never finished) rolled back\n`);
    const invalid = await invalidIndexes(prisma);
    for (const index of invalid) {
      process.stdout.write(`runbridge: index "${index}" is INVALID (what a failed CREATE INDEX CONCURRENTLY leaves); drop it before migrating, or the migration fails on it again: DROP INDEX CONCURRENTLY "${index}";\n`);
    }
    process.stdout.write(`runbridge: ${invalid.length ? "then " : ""}migrate again (pnpm db:migrate; with compose, docker compose run --rm migrate)\n`);
    return ExitCode.Ok;
  } finally {
    await prisma.$disconnect();
  }
}

function usage(problem: string): number {
  process.stderr.write(`runbridge: ${problem}\n\n${MIGRATIONS_USAGE}`);
  return ExitCode.Usage;
}

function refuse(reason: string): number {
  process.stderr.write(`runbridge: ${reason}; nothing changed\n`);
  return ExitCode.Rejected;
}

function markRolledBack(prisma: PrismaClient, name: string): Promise<Marked> {
  return prisma.$transaction(async (tx) => {
    const [state] = await tx.$queryRaw<Array<{ locked: boolean; migrated: boolean }>>`
      SELECT pg_try_advisory_xact_lock(${PRISMA_MIGRATE_LOCK}::bigint) AS locked, to_regclass('_prisma_migrations') IS NOT NULL AS migrated`;
    if (!state?.migrated) return { refused: "no migration has ever run on this database (it has no _prisma_migrations table)" };
    if (!state.locked) return { refused: "a migrate is running on this database right now (it holds Prisma's migration lock): wait until it has ended, and look again" };
    const rows = await tx.$queryRaw<MigrationRow[]>`
      UPDATE _prisma_migrations SET rolled_back_at = now()
      WHERE migration_name = ${name} AND finished_at IS NULL AND rolled_back_at IS NULL
      RETURNING migration_name, started_at, finished_at, rolled_back_at`;
    return { rows };
  });
}

async function whyNotFailed(prisma: PrismaClient, name: string): Promise<string> {
  const [latest] = await prisma.$queryRaw<MigrationRow[]>`
    SELECT migration_name, started_at, finished_at, rolled_back_at FROM _prisma_migrations
    WHERE migration_name = ${name} ORDER BY started_at DESC LIMIT 1`;
  const failed = await prisma.$queryRaw<MigrationRow[]>`
    SELECT migration_name, started_at, finished_at, rolled_back_at FROM _prisma_migrations
    WHERE finished_at IS NULL AND rolled_back_at IS NULL ORDER BY started_at`;
  const what = !latest
    ? `no migration ${name} has run on this database`
    : latest.finished_at
      ? `migration ${name} finished at ${latest.finished_at.toISOString()}: it did not fail`
      : `migration ${name} is already marked rolled back (at ${latest.rolled_back_at?.toISOString() ?? "?"}): migrate applies it again`;
  const list = failed.length
    ? `failed migrations on this database: ${failed.map((r) => `${r.migration_name} (started ${r.started_at.toISOString()})`).join(", ")}`
    : "no migration has failed on this database";
  return `${what}; ${list}`;
}

async function invalidIndexes(prisma: PrismaClient): Promise<string[]> {
  const rows = await prisma.$queryRaw<Array<{ name: string }>>`
    SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace ORDER BY 1`;
  return rows.map((r) => r.name);
}
