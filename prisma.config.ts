import { createRequire } from "node:module";
import path from "node:path";
import { PrismaPg } from "@prisma/adapter-pg";
import type { ClientConfig } from "pg";
import type { PrismaConfig } from "prisma";

// pg's own parser of connection strings (sslmode, sslrootcert, host=/socket...), taken from
// beside pg: it is pg's dependency, so it resolves wherever pg does (here, and in the migrate image).
const { parseIntoClientConfig } = createRequire(require.resolve("pg"))("pg-connection-string") as { parseIntoClientConfig(url: string): ClientConfig };

// The schema engine runs on WebAssembly through this adapter, so migrate and
// generate need no native engine download. PrismaPg gets discrete fields: with a
// connectionString the shadow database would silently point at the main one.
// Parsed as the services' pg parses it, so `?sslmode=require` means TLS for migrations too.
function pgFields(url: string) {
  const { host, port, user, password, database, ssl } = parseIntoClientConfig(url);
  return { host: host ?? "127.0.0.1", port: port ?? 5432, user, password, database: database ?? undefined, ssl };
}

export default {
  experimental: { adapter: true },
  engine: "js",
  schema: path.join("prisma", "schema.prisma"),
  migrations: { path: path.join("prisma", "migrations") },
  async adapter() {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error("DATABASE_URL is not set");
    return new PrismaPg(pgFields(url));
  },
} satisfies PrismaConfig;
