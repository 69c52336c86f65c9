import { execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { Client } from "pg";
import { createRedis } from "@runbridge/common";
import { HttpClient } from "./http-client";
import { ROOT, freePort, onCleanup, startChild, stopAll, until } from "./procs";

/** Built by `pnpm build:runner` (the bench scripts run it before the bench). */
const RUNNER_BUNDLE = path.join(ROOT, "apps/runner/dist/bundle/runbridge-runner.cjs");

export interface StackOptions {
  adminDatabaseUrl: string;
  databaseName: string;
  redisUrl: string;
  logDir: string;
  stateDir: string;
  logLevel: string;
}

export interface Stack {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  gatewayUrl: string;
  dispatcherUrl: string;
  dispatcher: ChildProcess;
  gateway: ChildProcess;
  runner: ChildProcess;
  tenantId: string;
  apiKey: string;
  serverId: string;
  /** The management API, with the tenant's general key. */
  admin: HttpClient;
}

/** The database, as a fresh one: dropped (connections forced off) and created. */
async function recreateDatabase(adminUrl: string, name: string): Promise<void> {
  const c = new Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const ident = `"${name.replace(/"/g, '""')}"`;
    await c.query(`DROP DATABASE IF EXISTS ${ident} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${ident}`);
  } finally {
    await c.end();
  }
}

function withDatabase(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Deletes every Redis key under the bench's prefix, so runs leave nothing behind in a shared Redis. */
async function dropRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = createRedis(redisUrl);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/**
 * The production shape on one box: a dispatcher and a gateway as separate
 * processes (environment as `pnpm dev` gives them), one real runner, a tenant
 * made with the CLI and a server through the management API.
 */
export async function startStack(o: StackOptions): Promise<Stack> {
  const databaseUrl = withDatabase(o.adminDatabaseUrl, o.databaseName);
  await recreateDatabase(o.adminDatabaseUrl, o.databaseName);
  execFileSync(process.execPath, [path.join(ROOT, "scripts/dist/migrate.js")], { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: "pipe" });

  const redisPrefix = `rbbench-${randomBytes(4).toString("hex")}`;
  onCleanup(() => dropRedisPrefix(o.redisUrl, redisPrefix));
  const [port, dispatcherPort] = [await freePort(), await freePort()];
  const common = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    REDIS_URL: o.redisUrl,
    REDIS_PREFIX: redisPrefix,
    LOG_LEVEL: o.logLevel,
    RUNBRIDGE_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    NODE_ENV: "production",
  };
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const dispatcherUrl = `http://127.0.0.1:${dispatcherPort}`;
  // 10k runner sockets need more descriptors than the usual default of 1,024.
  const dispatcher = startChild("dispatcher", process.execPath, [...nodeFlags("dispatcher"), path.join(ROOT, "apps/dispatcher/dist/main.js")], {
    env: { ...common, DISPATCHER_PORT: String(dispatcherPort), DISPATCHER_HOST: "127.0.0.1" },
    logDir: o.logDir,
    maxFiles: 65536,
  });
  const gateway = startChild("gateway", process.execPath, [...nodeFlags("gateway"), path.join(ROOT, "apps/gateway/dist/main.js")], {
    env: { ...common, PORT: String(port), HOST: "127.0.0.1" },
    logDir: o.logDir,
    maxFiles: 65536,
  });
  for (const [name, child] of [["dispatcher", dispatcher], ["gateway", gateway]] as const) {
    child.once("exit", (code, signal) => {
      if (!stackStopping) console.error(`\n${name} exited unexpectedly (${signal ?? code}); see ${path.join(o.logDir, `${name}.log`)}`);
    });
  }
  await until("the dispatcher", async () => (await fetch(`${dispatcherUrl}/readyz`)).ok, 60_000);
  await until("the gateway", async () => (await fetch(`${gatewayUrl}/readyz`)).ok, 60_000);

  const boot = JSON.parse(
    execFileSync(process.execPath, [path.join(ROOT, "apps/cli/dist/main.js"), "bootstrap", "--tenant", "bench"], { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: "utf8" }),
  ) as { tenant_id: string; api_key: string };
  const admin = new HttpClient(gatewayUrl, 8);
  const server = await admin.json<{ id: string; runner_token: string }>("POST", "/api/v1/servers", boot.api_key, { name: "bench-runner" });
  if (server.status !== 201) throw new Error(`creating the server answered ${server.status}: ${JSON.stringify(server.body)}`);

  // The single-file build, as servers run it (install.sh, the runner image): the unbundled dist/ also loads what
  // the runner never uses from the shared packages (a Redis client, a rate limiter), about 10 MB more resident —
  // and every spawn forks the whole process.
  if (!existsSync(RUNNER_BUNDLE)) throw new Error(`${path.relative(ROOT, RUNNER_BUNDLE)} is missing: run pnpm build:runner (pnpm bench does)`);
  const runner = startChild("runner", process.execPath, [...nodeFlags("runner"), RUNNER_BUNDLE], {
    env: {
      ...process.env,
      RUNBRIDGE_DISPATCHER_URL: dispatcherUrl,
      RUNBRIDGE_RUNNER_TOKEN: server.body.runner_token,
      RUNBRIDGE_STATE_DIR: o.stateDir,
      RUNBRIDGE_WORKDIR: o.stateDir,
      LOG_LEVEL: o.logLevel,
    },
    logDir: o.logDir,
  });
  await until("the runner to connect", async () => {
    const r = await admin.json<{ runner_connected: boolean }>("GET", `/api/v1/servers/${server.body.id}`, boot.api_key);
    return r.body.runner_connected;
  });
  return { databaseUrl, redisUrl: o.redisUrl, redisPrefix, gatewayUrl, dispatcherUrl, dispatcher, gateway, runner, tenantId: boot.tenant_id, apiKey: boot.api_key, serverId: server.body.id, admin };
}

/**
 * The stack every bench entry point measures: a fresh database `runbridge_bench`, PostgreSQL and
 * Redis where `pnpm test` finds them (BENCH_ADMIN_DATABASE_URL, REDIS_URL), the services' log level
 * from BENCH_LOG_LEVEL (default info, as in production).
 */
export async function startBenchStack(logDir: string, stateDir: string): Promise<Stack> {
  const stack = await startStack({
    adminDatabaseUrl: process.env.BENCH_ADMIN_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
    databaseName: "runbridge_bench",
    redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    logDir,
    stateDir,
    logLevel: process.env.BENCH_LOG_LEVEL ?? "info",
  });
  onCleanup(() => stack.admin.close());
  return stack;
}

/**
 * Runs a bench entry point to its end: whether it finishes, fails or is interrupted (SIGINT,
 * SIGTERM), everything it started is stopped before the process exits (0, 1 or 130).
 */
export function runBenchMain(name: string, main: () => Promise<void>, say: (line: string) => void): void {
  let interrupted = false;
  const finish = async (code: number): Promise<never> => {
    markStackStopping();
    await stopAll();
    process.exit(code);
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      say(`${sig}: stopping everything the bench started ...`);
      void finish(130);
    });
  }
  main().then(
    () => finish(0),
    (err: unknown) => {
      // Interrupted, it fails as the stack goes away under it: already on its way out with 130.
      if (interrupted) return;
      process.stderr.write(`\n${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      void finish(1);
    },
  );
}

let stackStopping = false;
export function markStackStopping(): void {
  stackStopping = true;
}

/** BENCH_CPU_PROF=1 writes V8 CPU profiles of the gateway, dispatcher and runner into bench/results/profiles/ for finding hot spots. */
function nodeFlags(name: string): string[] {
  if (process.env.BENCH_CPU_PROF !== "1") return [];
  return ["--cpu-prof", `--cpu-prof-dir=${path.join(ROOT, "bench/results/profiles")}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`];
}

/** Automation keys made through the management API. */
export async function createAutomationKeys(stack: Stack, count: number, rateLimit: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await stack.admin.json<{ key: string }>("POST", "/api/v1/automation-keys", stack.apiKey, { name: `bench-${rateLimit}-${i}`, rate_limit: rateLimit });
    if (r.status !== 201) throw new Error(`creating an automation key answered ${r.status}: ${JSON.stringify(r.body)}`);
    keys.push(r.body.key);
  }
  return keys;
}
