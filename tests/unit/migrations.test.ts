import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";

const MIGRATIONS = path.join(__dirname, "../../prisma/migrations");

/** Each migration's SQL as `prisma migrate deploy` runs it here: the pg driver adapter splits a script on every ";". */
const statementsOf = (sql: string) =>
  sql
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/**
 * The migrations as the migration runner reads them. The driver adapter (@prisma/adapter-pg's executeScript)
 * splits a file on every ";", comments included, and sends each piece on its own: a ";" in a comment turns
 * the rest of that comment into a statement (a syntax error, the migration failed in every database it
 * reaches), and a CREATE INDEX CONCURRENTLY that is not alone in its file runs inside a transaction, which
 * PostgreSQL refuses.
 */
describe("migrations", () => {
  const files = readdirSync(MIGRATIONS, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => [d.name, readFileSync(path.join(MIGRATIONS, d.name, "migration.sql"), "utf8")] as const);

  it("are there to check", () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it("have no ';' in a comment", () => {
    const offending = files.flatMap(([name, sql]) => sql.split("\n").filter((line) => /--.*;/.test(line)).map((line) => `${name}: ${line.trim()}`));
    expect(offending).toEqual([]);
  });

  it("build an index CONCURRENTLY only as a file's one statement", () => {
    const mixed = files.filter(([, sql]) => /CONCURRENTLY/i.test(sql) && statementsOf(sql).length !== 1).map(([name]) => name);
    expect(mixed).toEqual([]);
  });
});
