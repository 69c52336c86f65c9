import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import request from "supertest";
import { Client } from "pg";
import { TEST_ENCRYPTION_KEY, freshPrefix, testDatabaseUrl, testRedisUrl } from "../helpers/env";
import { Proc, ROOT, freePort, waitFor } from "../helpers/processes";

/**
 * The images' contents without Docker: docker/assemble.sh (which the
 * Dockerfile runs) lays out each image's files from the built workspace; each
 * tree is then started from a directory outside the repository, with a bare
 * environment, the way its image's CMD starts it: migrate a fresh database,
 * bootstrap a tenant with the CLI, run gateway and dispatcher, connect the
 * runner, run a command.
 */
describe("image contents assembled by docker/assemble.sh", () => {
  let out: string;
  let dbUrl: string;
  let dbName: string;
  const procs: Proc[] = [];
  const prefix = freshPrefix("img");

  const bareEnv = (extra: Record<string, string>) => ({ PATH: process.env.PATH, HOME: out, NODE_ENV: "production", ...extra });
  const start = (cwd: string, args: string[], env: Record<string, string>) => {
    const p = new Proc(spawn(process.execPath, args, { cwd, env: bareEnv(env), stdio: ["ignore", "pipe", "pipe"] }));
    procs.push(p);
    return p;
  };

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(ROOT, "deploy/runner/build-bundle.mjs")], { cwd: ROOT, stdio: "pipe" });
    out = mkdtempSync(path.join(tmpdir(), "rb-images-"));
    execFileSync("sh", [path.join(ROOT, "docker/assemble.sh"), out], { cwd: ROOT, stdio: "pipe", timeout: 240_000 });
    const admin = new URL(testDatabaseUrl());
    dbName = `rb_images_${prefix.replace(/[^a-z0-9]/g, "_")}`;
    admin.pathname = "/postgres";
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`CREATE DATABASE "${dbName}"`);
    await client.end();
    const u = new URL(testDatabaseUrl());
    u.pathname = `/${dbName}`;
    dbUrl = u.toString();
  }, 300_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop("SIGKILL")));
    const admin = new URL(testDatabaseUrl());
    admin.pathname = "/postgres";
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await client.end();
    rmSync(out, { recursive: true, force: true });
  });

  it("carries production dependencies only", () => {
    for (const tree of ["gateway/srv/apps/gateway", "dispatcher/srv/apps/dispatcher", "migrate/srv/migrate"]) {
      const installed = readdirSync(path.join(out, tree, "node_modules/.pnpm"));
      const dev = installed.filter((d) => /^(jest|eslint|@swc\+|supertest|esbuild|vite|typescript-eslint|@eslint\+)/.test(d));
      expect({ tree, dev }).toEqual({ tree, dev: [] });
      expect(existsSync(path.join(out, tree, "src"))).toBe(false);
    }
  });

  it("migrates, bootstraps, serves and runs a command from the assembled trees", async () => {
    // migrate image: CMD node node_modules/prisma/build/index.js migrate deploy
    const migrate = path.join(out, "migrate/srv/migrate");
    const migrated = execFileSync(process.execPath, ["node_modules/prisma/build/index.js", "migrate", "deploy"], {
      cwd: migrate,
      env: bareEnv({ DATABASE_URL: dbUrl, CHECKPOINT_DISABLE: "1" }),
      encoding: "utf8",
    });
    expect(migrated).toMatch(/successfully applied|No pending migrations/);
    const boot = JSON.parse(execFileSync(process.execPath, [path.join(out, "migrate/srv/cli/dist/main.js"), "bootstrap", "--tenant", "images"], { cwd: migrate, env: bareEnv({ DATABASE_URL: dbUrl }), encoding: "utf8" })) as { api_key: string };
    expect(boot.api_key).toMatch(/^rbk_/);

    const common = { DATABASE_URL: dbUrl, REDIS_URL: testRedisUrl(), REDIS_PREFIX: prefix, RUNBRIDGE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY };
    const gwPort = await freePort();
    const dPort = await freePort();
    const gateway = start(path.join(out, "gateway/srv/apps/gateway"), ["dist/main.js"], { ...common, PORT: String(gwPort), HOST: "127.0.0.1" });
    const dispatcher = start(path.join(out, "dispatcher/srv/apps/dispatcher"), ["dist/main.js"], { ...common, DISPATCHER_PORT: String(dPort), DISPATCHER_HOST: "127.0.0.1" });
    await gateway.waitForOutput(/gateway listening/, 30_000);
    await dispatcher.waitForOutput(/dispatcher ready/, 30_000);
    const api = request(`http://127.0.0.1:${gwPort}`);
    expect((await api.get("/readyz")).status).toBe(200);
    expect((await request(`http://127.0.0.1:${dPort}`).get("/readyz")).status).toBe(200);
    expect((await api.get("/dashboard/")).status).toBe(200);

    const server = await api.post("/api/v1/servers").set("Authorization", `Bearer ${boot.api_key}`).send({ name: "image-server" });
    expect(server.status).toBe(201);
    const key = await api.post("/api/v1/automation-keys").set("Authorization", `Bearer ${boot.api_key}`).send({ name: "ci" });
    expect(key.status).toBe(201);
    const runnerDir = mkdtempSync(path.join(out, "runner-state-"));
    start(runnerDir, [path.join(out, "runner/opt/runbridge/runbridge-runner.cjs")], {
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${dPort}`,
      RUNBRIDGE_RUNNER_TOKEN: server.body.runner_token as string,
      RUNBRIDGE_STATE_DIR: runnerDir,
      RUNBRIDGE_WORKDIR: runnerDir,
    });
    await waitFor(async () => (await api.get(`/api/v1/servers/${server.body.id}`).set("Authorization", `Bearer ${boot.api_key}`)).body.runner_connected === true, 20_000, "runner to connect");
    const exec = await api.post("/api/automation/v1/exec").set("Authorization", `Bearer ${key.body.key}`).send({ server_id: server.body.id, command: "echo from-images" });
    expect(exec.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "from-images\n" });
  });
});
