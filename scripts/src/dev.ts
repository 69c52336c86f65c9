/**
 * `pnpm dev`: the whole system on one machine — dispatcher, gateway, one local
 * runner — with a demo tenant, server and automation key, then a curl command
 * to paste. Demo credentials persist in .runbridge-dev/ so restarts keep them.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { migrateDeploy } from "./migrate";

const ROOT = path.resolve(__dirname, "../..");
const env = process.env;
const DATABASE_URL = env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/runbridge_dev";
const REDIS_URL = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PORT = env.PORT ?? "8080";
const DISPATCHER_PORT = env.DISPATCHER_PORT ?? "8081";
const DEV_DIR = path.resolve(ROOT, env.RUNBRIDGE_DEV_DIR ?? ".runbridge-dev");
const REDIS_PREFIX = env.REDIS_PREFIX ?? "rbdev";
const GATEWAY_URL = `http://127.0.0.1:${PORT}`;

interface Demo {
  tenant_id: string;
  api_key: string;
  server_id: string;
  runner_token: string;
  automation_key: string;
}

const children: ChildProcess[] = [];

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function fail(message: string): never {
  process.stderr.write(`\n${message}\n`);
  for (const c of children) c.kill("SIGTERM");
  process.exit(1);
}

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname || "127.0.0.1", port: Number(u.port || defaultPort) });
    socket.setTimeout(1500);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(false));
  });
}

async function checkServices(): Promise<void> {
  const howTo = [
    "Start them with Docker:   docker compose -f docker-compose.dev.yml up -d postgres redis",
    "or on Debian/Ubuntu:      pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "                          redis-server --daemonize yes --save '' --appendonly no",
    "or point DATABASE_URL / REDIS_URL at running ones.",
  ].join("\n");
  if (!(await reachable(DATABASE_URL, 5432))) fail(`PostgreSQL does not answer at ${new URL(DATABASE_URL).host} (DATABASE_URL).\n${howTo}`);
  if (!(await reachable(REDIS_URL, 6379))) fail(`Redis does not answer at ${new URL(REDIS_URL).host} (REDIS_URL).\n${howTo}`);
}

function run(cmd: string, args: string[], extraEnv: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { cwd: ROOT, env: { ...env, ...extraEnv }, encoding: "utf8" });
  if (r.status !== 0) fail(`${path.basename(cmd)} ${args.join(" ")} failed:\n${r.stderr || r.stdout}`);
  return r.stdout;
}

function createDatabase(): void {
  const u = new URL(DATABASE_URL);
  const name = u.pathname.slice(1);
  const admin = new URL(DATABASE_URL);
  admin.pathname = "/postgres";
  // psql is not assumed: node-postgres through a tiny inline script.
  const script = `const {Client}=require("pg");(async()=>{const c=new Client({connectionString:process.argv[1]});await c.connect();const r=await c.query("SELECT 1 FROM pg_database WHERE datname=$1",[process.argv[2]]);if(!r.rowCount)await c.query('CREATE DATABASE "'+process.argv[2].replace(/"/g,'""')+'"');await c.end();})().catch(e=>{console.error(e.message);process.exit(1)})`;
  run(process.execPath, ["-e", script, admin.toString(), name]);
}

function encryptionKey(): string {
  if (env.RUNBRIDGE_ENCRYPTION_KEY) return env.RUNBRIDGE_ENCRYPTION_KEY;
  const file = path.join(DEV_DIR, "encryption.key");
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString("base64"), { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

function start(name: string, script: string, extraEnv: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [path.join(ROOT, script)], {
    cwd: ROOT,
    env: { ...env, DATABASE_URL, REDIS_URL, REDIS_PREFIX, LOG_LEVEL: env.LOG_LEVEL ?? "info", ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
    // Own process group: Ctrl-C reaches only this script, which stops the children once, in order.
    detached: true,
  });
  const label = `[${name}]`.padEnd(13);
  for (const stream of [child.stdout, child.stderr]) {
    let buf = "";
    stream?.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        process.stdout.write(`${label}${buf.slice(0, nl)}\n`);
        buf = buf.slice(nl + 1);
      }
    });
  }
  child.on("exit", (code, signal) => {
    if (!shuttingDown) fail(`${name} exited (${signal ?? code}); see its log lines above.`);
  });
  children.push(child);
  return child;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) fail(`Timed out waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function api<T>(method: string, route: string, apiKey: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${GATEWAY_URL}${route}`, {
    method,
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Reuses the saved demo tenant when its key still works; otherwise makes a new one through the CLI and the API. */
async function demoData(): Promise<Demo> {
  const file = path.join(DEV_DIR, "demo.json");
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, "utf8")) as Demo;
    if ((await api("GET", `/api/v1/servers/${saved.server_id}`, saved.api_key)).status === 200) return saved;
  }
  const boot = JSON.parse(run(process.execPath, [path.join(ROOT, "apps/cli/dist/main.js"), "bootstrap", "--tenant", "demo"], { DATABASE_URL })) as {
    tenant_id: string;
    api_key: string;
  };
  const server = await api<{ id: string; runner_token: string }>("POST", "/api/v1/servers", boot.api_key, { name: "local-dev" });
  const key = await api<{ key: string }>("POST", "/api/v1/automation-keys", boot.api_key, { name: "demo CI key" });
  if (server.status !== 201 || key.status !== 201) fail(`could not create the demo server or key: ${JSON.stringify([server.body, key.body])}`);
  const demo: Demo = { tenant_id: boot.tenant_id, api_key: boot.api_key, server_id: server.body.id, runner_token: server.body.runner_token, automation_key: key.body.key };
  writeFileSync(file, JSON.stringify(demo, null, 2), { mode: 0o600 });
  return demo;
}

let shuttingDown = false;

async function main(): Promise<void> {
  mkdirSync(DEV_DIR, { recursive: true, mode: 0o700 });
  await checkServices();
  say(`runbridge dev: database ${new URL(DATABASE_URL).pathname.slice(1)}, redis prefix "${REDIS_PREFIX}"`);
  createDatabase();
  if ((await migrateDeploy({ ...env, DATABASE_URL }, true)) !== 0) fail("prisma migrate deploy failed (output above).");
  const RUNBRIDGE_ENCRYPTION_KEY = encryptionKey();

  start("dispatcher", "apps/dispatcher/dist/main.js", { RUNBRIDGE_ENCRYPTION_KEY, DISPATCHER_PORT, DISPATCHER_HOST: "127.0.0.1" });
  start("gateway", "apps/gateway/dist/main.js", { RUNBRIDGE_ENCRYPTION_KEY, PORT, HOST: "127.0.0.1" });
  await until("the gateway", async () => (await fetch(`${GATEWAY_URL}/readyz`).catch(() => null))?.ok === true);
  const demo = await demoData();
  start("runner", "apps/runner/dist/main.js", {
    RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${DISPATCHER_PORT}`,
    RUNBRIDGE_RUNNER_TOKEN: demo.runner_token,
    RUNBRIDGE_STATE_DIR: path.join(DEV_DIR, "runner"),
  });
  await until("the runner to connect", async () => {
    const r = await api<{ runner_connected: boolean }>("GET", `/api/v1/servers/${demo.server_id}`, demo.api_key);
    return r.body.runner_connected;
  });

  say("");
  say("runbridge is running:");
  say(`  gateway     ${GATEWAY_URL}   (Automation API under /api/automation/v1, management API under /api/v1)`);
  say(`  dispatcher  http://127.0.0.1:${DISPATCHER_PORT}   (runners connect here)`);
  say(`  dashboard   ${GATEWAY_URL}/dashboard   (sign in with the general API key below)`);
  say(`  general API key (management):  ${demo.api_key}`);
  say(`  automation key (CI):           ${demo.automation_key}`);
  say("");
  say("Run a command on the local runner:");
  say("");
  say(`curl -s -X POST ${GATEWAY_URL}/api/automation/v1/exec -H "Authorization: Bearer ${demo.automation_key}" -H "Content-Type: application/json" -d '{"server_id": "${demo.server_id}", "command": "echo hello from $(hostname); uptime"}'`);
  say("");
  say("Ctrl-C stops everything.");
}

function shutdown(): void {
  if (shuttingDown) return;
  shuttingDown = true;
  for (const c of [...children].reverse()) c.kill("SIGTERM");
  setTimeout(() => process.exit(0), 5000).unref();
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once("exit", r))))).then(() => process.exit(0), () => process.exit(0));
}

process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
main().catch((err: unknown) => fail(`runbridge dev failed: ${err instanceof Error ? err.message : String(err)}`));
