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
  // Three on the two cores CI has: a test file spends much of its time waiting (for a runner's
  // reconnect, a deadline, a sweep), and with two workers the cores sat about half idle; a third
  // worker fills them (measured on one instance: 843 s → 644 s, the CPU ~84 % busy instead of about half).
  maxWorkers: 3,
  // A worker that has closed everything still takes 0.2–0.7 s here to give its heap back after its
  // last file (traced: exit event at once, then the teardown), past jest's default 0.5 s: it was
  // force-exited and reported as leaking at the end of every full run. One that really leaks is
  // still force-exited and reported, 5 s on.
  workerGracefulExitTimeout: 5_000,
  verbose: false,
};

export default config;
