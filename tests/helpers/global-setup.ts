import { Client } from "pg";
import { migrateDeploy } from "../../scripts/src/migrate";
import { testDatabaseUrl } from "./env";

/** Creates the test database if needed and applies the committed migrations to it. */
export default async function globalSetup(): Promise<void> {
  const url = new URL(testDatabaseUrl());
  const dbName = url.pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [dbName]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE "${dbName.replace(/"/g, '""')}"`);
  } finally {
    await client.end();
  }
  const code = await migrateDeploy({ ...process.env, DATABASE_URL: url.toString() }, true);
  if (code !== 0) throw new Error(`prisma migrate deploy failed with exit code ${code}`);
}
