import { migrateDeploy } from "../../scripts/src/migrate";
import { testDatabaseUrl } from "../helpers/env";

/**
 * `prisma migrate deploy` (pnpm db:migrate, the compose migrate service) reads DATABASE_URL as the
 * services' pg does: `?sslmode=require` must mean TLS for migrations too, not a plain connection
 * (refused by a PostgreSQL that requires TLS, unencrypted against one that merely allows it).
 */
describe("migrations and the DATABASE_URL's parameters", () => {
  const withParams = (params: string) => `${testDatabaseUrl()}${testDatabaseUrl().includes("?") ? "&" : "?"}${params}`;

  // Whether or not this PostgreSQL has TLS: a CA file that is not there fails only if the URL's TLS settings are read.
  it("honour the URL's TLS settings (sslmode, sslrootcert), and connect in plain with sslmode=disable", async () => {
    expect(await migrateDeploy({ ...process.env, DATABASE_URL: withParams("sslmode=disable") }, true)).toBe(0);
    const stderr = process.stderr.write.bind(process.stderr);
    let said = "";
    process.stderr.write = ((chunk: string | Uint8Array) => {
      said += String(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await migrateDeploy({ ...process.env, DATABASE_URL: withParams("sslmode=verify-full&sslrootcert=/nonexistent/runbridge-ca.pem") }, true)).not.toBe(0);
    } finally {
      process.stderr.write = stderr;
    }
    expect(said).toMatch(/\/nonexistent\/runbridge-ca\.pem/);
  });
});
