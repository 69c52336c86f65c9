import { execFileSync, spawn } from "node:child_process";
import { builtinModules } from "node:module";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { Proc, ROOT, RUNNER_SCRIPT } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/**
 * The runner as an operator installs it: one file built by `pnpm build:runner`,
 * copied alone into a directory outside the repository (so it cannot resolve
 * the workspace's node_modules) and started with nothing but node.
 */
describe("single-file runner bundle", () => {
  let stack: TestStack;
  let dir: string;
  let bundle: string;
  let runner: Proc | null = null;
  let fx: Awaited<ReturnType<typeof createFixture>>;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-bundle-"));
    bundle = path.join(dir, "runbridge-runner.cjs");
    copyFileSync(path.join(ROOT, RUNNER_SCRIPT), bundle);
    stack = await TestStack.start();
    fx = await createFixture();
  }, 120_000);

  afterAll(async () => {
    await runner?.stop("SIGKILL");
    await stack.stop();
    await closeTestPrisma();
    rmSync(dir, { recursive: true, force: true });
  });

  const startBundled = (port: number): Proc =>
    new Proc(
      spawn(process.execPath, [bundle], {
        cwd: dir,
        // Only what a systemd unit would give it: no NODE_PATH, nothing from the workspace.
        env: {
          PATH: process.env.PATH,
          HOME: dir,
          // With a user and password, as for a proxy's basic auth: never in its logs.
          RUNBRIDGE_DISPATCHER_URL: `http://rb-proxy-user:proxy-canary-7@127.0.0.1:${port}`,
          RUNBRIDGE_RUNNER_TOKEN: fx.runnerToken,
          RUNBRIDGE_STATE_DIR: path.join(dir, "state"),
          RUNBRIDGE_WORKDIR: dir,
        },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );

  it("needs no module outside Node.js itself", () => {
    const text = readFileSync(bundle, "utf8");
    const required = new Set([...text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!));
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    // ws tries these optional native add-ons inside try/catch and works without them.
    const optional = new Set(["bufferutil", "utf-8-validate"]);
    const foreign = [...required].filter((m) => !builtins.has(m) && !optional.has(m) && !m.startsWith("."));
    expect(foreign).toEqual([]);
    expect(text.startsWith("#!/usr/bin/env node")).toBe(true);
  });

  it("refuses to start without its configuration, naming every missing variable", () => {
    let out = "";
    try {
      execFileSync(process.execPath, [bundle], { cwd: dir, env: { PATH: process.env.PATH, HOME: dir }, stdio: "pipe" });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      expect(e.status).toBe(78);
      out = e.stderr.toString();
    }
    expect(out).toContain("RUNBRIDGE_DISPATCHER_URL");
    expect(out).toContain("RUNBRIDGE_RUNNER_TOKEN");
  });

  it("connects to the dispatcher and runs a command", async () => {
    runner = startBundled(stack.dispatcherPorts[0]!);
    await stack.waitRunnerConnected(fx.server.id);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: "echo from-bundle; pwd", env: { BUNDLE_SECRET: "bundle-canary-42" } });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: `from-bundle\n${dir}\n` });
    expect(runner.output).toMatch(/"message":"connected to dispatcher"[^\n]*"url":"http:\/\/127\.0\.0\.1:\d+\/"/);
    expect(runner.output).not.toContain("bundle-canary-42");
    expect(runner.output).not.toContain("proxy-canary-7");
  });

  it("reconnects by itself when its dispatcher is replaced", async () => {
    const port = stack.dispatcherPorts[0]!;
    await stack.dispatchers[0]!.stop();
    await stack.startDispatcher({ DISPATCHER_PORT: String(port), DISPATCHER_ID: "d-replacement" });
    await stack.waitRunnerConnected(fx.server.id, 30_000);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: "echo again" });
    expect(res.body).toMatchObject({ status: "completed", stdout: "again\n" });
    expect(runner!.running).toBe(true);
  });
});
