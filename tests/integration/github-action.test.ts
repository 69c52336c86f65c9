import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { FakeDocker } from "../helpers/fake-docker";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";
import { ClientProc, FaultProxy, baseEnv, parseFileCommands } from "./cli-process";

/**
 * The Action's bundled entry points run the way GitHub's runner runs them:
 * `node dist/index.js` (then `node dist/post.js`) with INPUT_* variables and
 * GITHUB_OUTPUT / GITHUB_STATE files, against the real stack.
 */
describe("GitHub Action (packages/github-action/dist)", () => {
  const docker = new FakeDocker();
  const suite = useStackWithRunner({}, { env: { PATH: docker.path } });
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  interface StepResult {
    code: number | null;
    log: string;
    outputs: Record<string, string>;
    state: Record<string, string>;
    stateFile: string;
  }

  /** Starts one step's entry with `with:` inputs as GitHub passes them (INPUT_<NAME>, hyphens kept). */
  function startStep(entry: "index" | "post", inputs: Record<string, string>, extra: Record<string, string> = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-gha-step-"));
    const outputFile = path.join(dir, "output");
    const stateFile = path.join(dir, "state");
    writeFileSync(outputFile, "");
    writeFileSync(stateFile, "");
    const env: Record<string, string> = baseEnv({
      GITHUB_ACTIONS: "true",
      GITHUB_RUN_ID: "9001",
      GITHUB_REPOSITORY: "myorg/myapp",
      GITHUB_WORKFLOW: "ci",
      GITHUB_EVENT_NAME: "push",
      GITHUB_ACTOR: "octocat",
      GITHUB_SHA: "cafe1234",
      GITHUB_REF: "refs/heads/main",
      GITHUB_OUTPUT: outputFile,
      GITHUB_STATE: stateFile,
      "INPUT_URL": stack.url,
      "INPUT_API-KEY": fx.token,
      ...extra,
    });
    for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
    return { proc: new ClientProc(`packages/github-action/dist/${entry}.js`, [], env), outputFile, stateFile };
  }

  async function runStep(entry: "index" | "post", inputs: Record<string, string>, extra: Record<string, string> = {}): Promise<StepResult> {
    const { proc, outputFile, stateFile } = startStep(entry, inputs, extra);
    const code = await proc.exited;
    return { code, log: proc.stdout + proc.stderr, outputs: parseFileCommands(outputFile), state: parseFileCommands(stateFile), stateFile };
  }

  it("runs a command: outputs, masks of the key and every env value, grouped output", async () => {
    const r = await runStep("index", {
      "server-id": fx.server.id,
      command: 'echo hello; echo "token=$DEPLOY_TOKEN"; echo warn >&2; echo "::set-output name=x::injected"',
      env: "DEPLOY_TOKEN=canary-gha-token-1\nMULTI=canary-gha-2\n\n# a comment\nEMPTY=",
      timeout: "30",
    });
    expect(r.code).toBe(0);
    expect(r.outputs["operation-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.outputs["exit-code"]).toBe("0");
    expect(r.outputs.status).toBe("completed");
    expect(r.outputs.stdout).toBe("hello\ntoken=***\n::set-output name=x::injected\n");
    expect(r.log).toContain(`::add-mask::${fx.token}\n`);
    expect(r.log).toContain("::add-mask::canary-gha-token-1\n");
    expect(r.log).toContain("::add-mask::canary-gha-2\n");
    // Output sits in a group, with workflow commands switched off around it.
    const group = r.log.indexOf("::group::runbridge exec");
    const stop = /::stop-commands::(runbridge-[0-9a-f-]+)\n/.exec(r.log);
    expect(group).toBeGreaterThanOrEqual(0);
    expect(stop).not.toBeNull();
    const resume = r.log.indexOf(`::${stop?.[1]}::`);
    const hello = r.log.indexOf("hello\n");
    expect(hello).toBeGreaterThan(group);
    expect(r.log.indexOf("::set-output name=x::injected")).toBeLessThan(resume);
    expect(r.log.indexOf("::endgroup::")).toBeGreaterThan(resume);
    expect(r.log).toContain("warn\n");
    // The key's and env values appear only inside the add-mask commands.
    expect(r.log.split(fx.token).length).toBe(2);
    expect(r.log.split("canary-gha-token-1").length).toBe(2);

    const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: r.outputs["operation-id"] as string } });
    expect(op.runId).toBe("github-run-9001");
    expect(op.runContext).toMatchObject({ provider: "github_actions", repository: "myorg/myapp", actor: "octocat", sha: "cafe1234" });
    expect(op.timeoutSeconds).toBe(30);
  });

  it("fails the step on a non-zero exit, with the exit code as output", async () => {
    const r = await runStep("index", { "server-id": fx.server.id, command: "echo before; exit 3" });
    expect(r.code).toBe(1);
    expect(r.outputs["exit-code"]).toBe("3");
    expect(r.outputs.status).toBe("completed");
    expect(r.outputs.stdout).toBe("before\n");
    expect(r.log).toMatch(/::error::runbridge: operation .* completed with exit code 3/);
  });

  it("fails the step on a timeout", async () => {
    const r = await runStep("index", { "server-id": fx.server.id, command: "sleep 30", timeout: "1" });
    expect(r.code).toBe(1);
    expect(r.outputs.status).toBe("timeout");
    expect(r.outputs["exit-code"]).toBe("124");
    expect(r.log).toMatch(/::error::runbridge: operation .* timed out/);
  });

  /** The step failed because its operation was cancelled, and the operation was. */
  async function expectCancelledStep(proc: ClientProc, outputFile: string): Promise<void> {
    expect(await proc.exited).toBe(1);
    const outputs = parseFileCommands(outputFile);
    expect(outputs).toMatchObject({ status: "cancelled", "exit-code": "130" });
    const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: outputs["operation-id"] as string } });
    expect(op.status).toBe("cancelled");
    expect(proc.stdout).toMatch(/::error::runbridge: operation .* was cancelled/);
  }

  it("cancels the remote operation when the workflow run is cancelled (SIGINT), and fails the step", async () => {
    const { proc, outputFile } = startStep("index", { "server-id": fx.server.id, command: "echo waiting; sleep 60" });
    await proc.waitFor(/^waiting$/m);
    proc.child.kill("SIGINT");
    await expectCancelledStep(proc, outputFile);
  });

  /** The step's log turns workflow commands back on after the remote output (`::<token>::` after `::stop-commands::<token>`). */
  function expectCommandsResumed(log: string): void {
    const token = /^::stop-commands::(\S+)$/m.exec(log)?.[1];
    expect(token).toBeDefined();
    expect(log).toContain(`\n::${token}::\n`);
  }

  it("cancels the remote operation on a SIGINT before its id is known, resumes workflow commands and fails the step", async () => {
    // The proxy shows when the POST has gone out: the signal then comes while it is open and before discovery's first lookup.
    const proxy = await new FaultProxy(stack.url).start();
    try {
      const { proc, outputFile } = startStep("index", { "server-id": fx.server.id, command: "echo waiting; sleep 60" }, { INPUT_URL: proxy.url });
      await waitFor(async () => proxy.seen.some((s) => s.method === "POST") || null, 10_000, "the POST");
      proc.child.kill("SIGINT");
      await expectCancelledStep(proc, outputFile);
      expectCommandsResumed(proc.stdout);
    } finally {
      await proxy.stop();
    }
  });

  it("on a second signal exits at once, with workflow commands resumed and the step failed", async () => {
    const { proc, outputFile } = startStep("index", { "server-id": fx.server.id, command: "echo waiting; sleep 60" });
    await proc.waitFor(/^waiting$/m);
    proc.child.kill("SIGINT");
    await proc.waitFor(/SIGINT: cancelling operation/);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(1);
    expectCommandsResumed(proc.stdout);
    expect(proc.stdout).toMatch(/::error::runbridge: SIGTERM: exiting without waiting for the operation/);
    expect(parseFileCommands(outputFile)["exit-code"]).toBe("130");
  });

  it("on a second signal while its log is backed up, exits only once the log is out, the error line and resumed commands with it", async () => {
    const { proc, outputFile } = startStep("index", { "server-id": fx.server.id, command: "echo waiting; sleep 1; head -c 4000000 /dev/zero | tr '\\0' x; echo; sleep 60" });
    await proc.waitFor(/^waiting$/m);
    // The runner's log reader stops reading, as a busy one may: the step's output backs up in its pipe and process.
    proc.child.stdout.pause();
    await new Promise((r) => setTimeout(r, 3000));
    proc.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 500));
    proc.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    proc.child.stdout.resume();
    expect(await proc.exited).toBe(1);
    expectCommandsResumed(proc.stdout);
    expect(proc.stdout).toMatch(/::error::runbridge: SIGTERM: exiting without waiting for the operation/);
    expect(parseFileCommands(outputFile)["exit-code"]).toBe("130");
  });

  it("fails the step, naming the input, when a required input is missing or the key is refused", async () => {
    const missing = await runStep("index", { command: "true" });
    expect(missing.code).toBe(1);
    expect(missing.log).toMatch(/::error::runbridge: input "server-id" is required for operation exec/);
    const refused = await runStep("index", { "server-id": fx.server.id, command: "true" }, { "INPUT_API-KEY": "rca_bogus" });
    expect(refused.code).toBe(1);
    expect(refused.outputs["exit-code"]).toBe("77");
    expect(refused.log).toMatch(/::error::runbridge: the API refused the request: HTTP 401/);
    // A key with a control character: a usage error whose message never holds the key (only the mask command does).
    const unsendable = await runStep("index", { "server-id": fx.server.id, command: "true" }, { "INPUT_API-KEY": "rca_pasted\u0001canaryKey42" });
    expect(unsendable.code).toBe(1);
    expect(unsendable.outputs["exit-code"]).toBe("64");
    expect(unsendable.log).toMatch(/::error::runbridge: input "api-key" holds a character that cannot be sent in an HTTP header/);
    expect(unsendable.log.replace(/^::add-mask::.*$/gm, "")).not.toMatch(/canaryKey42|retrying/);
  });

  it("registry-login saves state, and the post step logs out of the same registry", async () => {
    const cred = await stack
      .api()
      .post("/api/v1/registry-credentials")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: "ghcr", registry_url: "ghcr.io", username: "bot", password: "canary-registry-pw-4" });
    expect(cred.status).toBe(201);

    const login = await runStep("index", { operation: "registry-login", "server-id": fx.server.id, "credential-id": cred.body.id });
    expect(login.code).toBe(0);
    expect(login.outputs.status).toBe("completed");
    expect(login.state).toMatchObject({ registry_url: "ghcr.io", server_id: fx.server.id, run_id: "github-run-9001" });
    expect(login.log).not.toContain("canary-registry-pw-4");

    // GitHub hands the saved state to the post step as STATE_<name>.
    const stateEnv = Object.fromEntries(Object.entries(login.state).map(([k, v]) => [`STATE_${k}`, v]));
    const post = await runStep("post", { operation: "registry-login", "server-id": fx.server.id, "credential-id": cred.body.id }, stateEnv);
    expect(post.code).toBe(0);
    expect(post.log).toMatch(/completed with exit code 0/);
    const calls = docker.calls();
    expect(calls.map((c) => c.argv.slice(0, 2))).toEqual([
      ["login", "ghcr.io"],
      ["logout", "ghcr.io"],
    ]);
    expect(calls[0]?.stdin).toBe("canary-registry-pw-4");
    const logout = await testPrisma().operation.findFirstOrThrow({ where: { serverId: fx.server.id, type: "registry_logout" } });
    expect(logout.runId).toBe("github-run-9001");

    // Without saved state (no login happened) the post step does nothing.
    const idle = await runStep("post", { operation: "exec" });
    expect(idle.code).toBe(0);
    expect(idle.log).toBe("");
    expect(docker.calls().length).toBe(2);
  });

  it("logs out in the post step even when the main step failed after the login was accepted (its registry read from the login operation)", async () => {
    const cred = await stack
      .api()
      .post("/api/v1/registry-credentials")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: `quay-${Date.now()}`, registry_url: "quay.io", username: "bot", password: "canary-registry-pw-5" });
    expect(cred.status).toBe(201);
    const before = docker.calls().length;
    // Every read after the accepted POST is refused: following fails, and the step with it.
    const proxy = await new FaultProxy(stack.url, (req) => (req.method === "GET" ? { status: 403, body: { detail: "refused by the test" } } : "forward")).start();
    try {
      const login = await runStep("index", { operation: "registry-login", "server-id": fx.server.id, "credential-id": cred.body.id }, { "INPUT_URL": proxy.url });
      expect(login.code).not.toBe(0);
      expect(login.state).toMatchObject({ login_operation_id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown, server_id: fx.server.id, run_id: "github-run-9001" });
      expect(login.state.registry_url).toBeUndefined();
      const loginId = login.state.login_operation_id as string;
      await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id: loginId } })).status !== "running", 15_000, "the login to end");

      const stateEnv = Object.fromEntries(Object.entries(login.state).map(([k, v]) => [`STATE_${k}`, v]));
      const post = await runStep("post", { operation: "registry-login", "server-id": fx.server.id, "credential-id": cred.body.id }, stateEnv);
      expect(post.code).toBe(0);
      expect(post.log).toMatch(/logging out of quay\.io/);
      // The logout's output is printed with workflow commands stopped, and they are resumed after it.
      expect(post.log).toMatch(/::stop-commands::(runbridge-[0-9a-f-]+)[\s\S]*::\1::/);
      expect(docker.calls().slice(before).map((c) => c.argv.slice(0, 2))).toEqual([
        ["login", "quay.io"],
        ["logout", "quay.io"],
      ]);
    } finally {
      await proxy.stop();
    }
  });
});
