import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Client } from "pg";
import { scratchDatabase } from "../helpers/db";
import { ROOT } from "../helpers/processes";
import { ClientProc, baseEnv, cli } from "./cli-process";

/** The newest migration that builds an index CONCURRENTLY: the kind that can fail part-way on a large table. */
function newestConcurrentIndexMigration(): { name: string; index: string; table: string } {
  const dir = path.join(ROOT, "prisma/migrations");
  for (const name of readdirSync(dir).filter((d) => /^\d{14}_/.test(d)).sort().reverse()) {
    const m = /CREATE INDEX CONCURRENTLY "([^"]+)" ON "([^"]+)"/.exec(readFileSync(path.join(dir, name, "migration.sql"), "utf8"));
    if (m?.[1] && m[2]) return { name, index: m[1], table: m[2] };
  }
  throw new Error("no CONCURRENTLY migration in prisma/migrations");
}

/** `prisma migrate deploy` takes this advisory lock while it runs (Prisma's schema engine). */
const PRISMA_MIGRATE_LOCK = 72707369;

/**
 * docs/operations.md (Upgrades): a CONCURRENTLY migration that fails part-way leaves an INVALID index
 * and a failed migration, and every later migrate stops at it (P3009). `prisma migrate resolve
 * --rolled-back` cannot run here (it needs the native schema engine), so `runbridge migrations
 * rolled-back` marks it; the index is dropped, and migrate applies the migration again.
 */
describe("runbridge migrations rolled-back", () => {
  const failing = newestConcurrentIndexMigration();
  let db: { url: string; drop: () => Promise<void> };
  let sql: Client;

  const migrate = async (env: Record<string, string> = {}) => {
    const p = new ClientProc("scripts/dist/migrate.js", [], baseEnv({ DATABASE_URL: db.url, ...env }));
    const code = await p.exited;
    return { code, output: p.stdout + p.stderr };
  };
  const rolledBack = (name: string) => cli(["migrations", "rolled-back", name], baseEnv({ DATABASE_URL: db.url }));
  const history = async () =>
    (await sql.query("SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at, logs, applied_steps_count FROM _prisma_migrations ORDER BY started_at, id")).rows as Array<{
      id: string;
      migration_name: string;
      finished_at: Date | null;
      rolled_back_at: Date | null;
      logs: string | null;
    }>;
  const indexValid = async () => (await sql.query<{ valid: boolean }>("SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)", [`"${failing.index}"`])).rows[0]?.valid;

  beforeAll(async () => {
    db = await scratchDatabase("rolledback");
    const fresh = await migrate();
    expect(fresh).toMatchObject({ code: 0 });
    sql = new Client({ connectionString: db.url });
    await sql.connect();
  }, 60_000);

  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it("marks a CONCURRENTLY migration that failed part-way rolled back, after which migrate applies it again", async () => {
    // Back to before that migration, then the upgrade's migrate fails as it does on a busy large table: a
    // writer's transaction outlasts the build's wait for it, after the index's catalog entry exists.
    await sql.query("DELETE FROM _prisma_migrations WHERE migration_name = $1", [failing.name]);
    await sql.query(`DROP INDEX "${failing.index}"`);
    const writer = new Client({ connectionString: db.url });
    await writer.connect();
    await writer.query("BEGIN");
    await writer.query(`LOCK TABLE "${failing.table}" IN ROW EXCLUSIVE MODE`);
    const failed = await migrate({ PGOPTIONS: "-c lock_timeout=1000" });
    await writer.query("ROLLBACK");
    await writer.end();
    expect(failed.code).not.toBe(0);
    expect((await history()).filter((r) => r.migration_name === failing.name)).toEqual([expect.objectContaining({ finished_at: null, rolled_back_at: null, logs: expect.stringMatching(/lock timeout/) })]);
    expect(await indexValid()).toBe(false);

    // Every later migrate stops at the failed one.
    const blocked = await migrate();
    expect(blocked.code).not.toBe(0);
    expect(blocked.output).toMatch(new RegExp(`P3009[\\s\\S]*${failing.name}`));

    // Refused, changing nothing: a name that is not the failed one (which the refusal names), and any
    // name while a migrate runs (its CONCURRENTLY build is unfinished for minutes, just like a failed one).
    const before = await history();
    const unknown = await rolledBack("20991231000000_no_such_migration");
    expect(unknown).toMatchObject({ code: 65, stdout: "" });
    expect(unknown.stderr).toMatch(new RegExp(`no migration 20991231000000_no_such_migration has run on this database; failed migrations on this database: ${failing.name} \\(started [^)]+\\); nothing changed`));
    const running = new Client({ connectionString: db.url });
    await running.connect();
    await running.query("SELECT pg_advisory_lock($1)", [PRISMA_MIGRATE_LOCK]);
    const whileRunning = await rolledBack(failing.name);
    await running.end();
    expect(whileRunning).toMatchObject({ code: 65, stdout: "" });
    expect(whileRunning.stderr).toMatch(/a migrate is running on this database right now.*nothing changed/);
    expect(await history()).toEqual(before);

    const marked = await rolledBack(failing.name);
    expect(marked).toMatchObject({ code: 0, stderr: "" });
    expect(marked.stdout).toMatch(new RegExp(`marked migration ${failing.name} \\(started [^)]+, never finished\\) rolled back`));
    expect(marked.stdout).toContain(`DROP INDEX CONCURRENTLY "${failing.index}";`);
    const after = await history();
    expect(after.filter((r) => r.migration_name !== failing.name)).toEqual(before.filter((r) => r.migration_name !== failing.name));
    expect(after.find((r) => r.migration_name === failing.name)?.rolled_back_at).toBeInstanceOf(Date);

    await sql.query(`DROP INDEX CONCURRENTLY "${failing.index}"`);
    const healed = await migrate();
    expect(healed).toMatchObject({ code: 0 });
    expect(healed.output).toContain(failing.name);
    expect(await indexValid()).toBe(true);
  }, 120_000);

  it("refuses a finished migration, also one that failed once and has been applied since, changing nothing", async () => {
    const before = await history();
    const oldest = before[0]?.migration_name ?? "";
    for (const name of [oldest, failing.name]) {
      const res = await rolledBack(name);
      expect(res).toMatchObject({ code: 65, stdout: "" });
      expect(res.stderr).toMatch(new RegExp(`migration ${name} finished at [^:]+:\\d\\d:[\\d.]+Z: it did not fail; no migration has failed on this database; nothing changed`));
    }
    expect(await history()).toEqual(before);
  });
});
