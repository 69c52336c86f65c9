import type { Config } from "jest";

// Tests use real PostgreSQL and Redis and real dispatcher/runner processes
// (built into dist/ by `pnpm test` before jest starts).
const config: Config = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests", "<rootDir>/packages", "<rootDir>/apps"],
  testMatch: ["**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "/dist/"],
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } }] },
  moduleNameMapper: { "^@runbridge/(contracts|common|db)$": "<rootDir>/packages/$1/src" },
  globalSetup: "<rootDir>/tests/helpers/global-setup.ts",
  testTimeout: 60_000,
  // Two on the two cores CI has. A third filled the cores on a fast instance (843 s → 644 s there), but
  // on the slow one (page faults ~14 µs) it overloaded them: three fresh-clone runs in a row on
  // 2026-12-01 each failed one or two timing-bound suites (a Redis command timing out, a 5 s
  // interactive transaction expiring after 6.5 s, a fresh process's first fetch past a 1.5 s deadline).
  maxWorkers: 2,
  // A worker that has closed everything still takes 0.2–0.7 s here to give its heap back after its
  // last file (traced: exit event at once, then the teardown), past jest's default 0.5 s: it was
  // force-exited and reported as leaking at the end of every full run. One that really leaks is
  // still force-exited and reported, 5 s on.
  workerGracefulExitTimeout: 5_000,
  verbose: false,
};

export default config;
