import { execFileSync } from "node:child_process";
import { mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import request from "supertest";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { type OtherNode, otherNodes } from "../helpers/node-versions";
import { ROOT, startNode, type Proc } from "../helpers/processes";
import { TestStack } from "../helpers/stack";
import { ClientProc, baseEnv, parseFileCommands } from "./cli-process";

/**
 * The suite runs on the machine's Node; the images run Node 24, servers run
 * whatever Node they have (20 or later), and GitHub runs the Action on Node 24.
 * For each Node of RUNBRIDGE_TEST_NODES (.ci/run sets it), the system once more
 * on that Node alone: a dispatcher, a gateway process and the single-file
 * runner as installed on servers, then the standalone CLI and the Action's
 * bundle as CI runs them.
 */
const nodes = otherNodes();

if (nodes.length === 0) {
  describe.skip("on other Node versions (none given: set RUNBRIDGE_TEST_NODES to their binaries)", () => {
    it("runs the system on each", () => undefined);
  });
}

for (const node of nodes) describe(`on Node ${node.version}`, () => onNode(node));

function onNode(node: OtherNode): void {
  let stack: TestStack;
  let gatewayUrl: string;
  let gateway: Proc;
  let runner: Proc;
  let fx: Awaited<ReturnType<typeof createFixture>>;
  let dir: string;

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(ROOT, "deploy/runner/build-bundle.mjs")], { cwd: ROOT, stdio: "pipe" });
    dir = mkdtempSync(path.join(tmpdir(), "rb-node-version-"));
    stack = await TestStack.start({ node: node.path });
    ({ proc: gateway, url: gatewayUrl } = await stack.startGatewayProcess());
    fx = await createFixture();
    runner = startNode(
      "apps/runner/dist/bundle/runbridge-runner.cjs",
      { RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${stack.dispatcherPorts[0]}`, RUNBRIDGE_RUNNER_TOKEN: fx.runnerToken, RUNBRIDGE_STATE_DIR: path.join(dir, "state"), RUNBRIDGE_WORKDIR: dir },
      [],
      node.path,
    );
    stack.runners.push(runner);
    await stack.waitRunnerConnected(fx.server.id);
  }, 120_000);

  afterAll(async () => {
    await stack.stop();
    await closeTestPrisma();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs its services and the runner on that Node, and an exec goes through them", async () => {
    for (const proc of [stack.dispatchers[0]!, gateway, runner]) expect(readlinkSync(`/proc/${proc.pid}/exe`)).toBe(node.path);
    const res = await request(gatewayUrl)
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: 'echo "secret=$SECRET"; echo warn >&2; exit 3', env: { SECRET: "canary-node-versions" } });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 3, stdout: "secret=***\n", stderr: "warn\n" });
  });

  it("the standalone CLI streams a command's output and exits with its code", async () => {
    const env = baseEnv({ RUNBRIDGE_URL: gatewayUrl, RUNBRIDGE_API_KEY: fx.token });
    const cli = new ClientProc("apps/cli/standalone/runbridge.cjs", ["exec", "--server", fx.server.id, "--", "echo streamed; exit 4"], env, node.path);
    expect(await cli.exited).toBe(4);
    expect(cli.stdout).toBe("streamed\n");
  });

  it("the GitHub Action's main step runs a command and writes its outputs", async () => {
    const outputFile = path.join(dir, "github-output");
    const stateFile = path.join(dir, "github-state");
    execFileSync("touch", [outputFile, stateFile]);
    const env = baseEnv({
      GITHUB_ACTIONS: "true",
      GITHUB_OUTPUT: outputFile,
      GITHUB_STATE: stateFile,
      INPUT_URL: gatewayUrl,
      "INPUT_API-KEY": fx.token,
      "INPUT_SERVER-ID": fx.server.id,
      INPUT_COMMAND: "echo from-the-action",
    });
    const step = new ClientProc("packages/github-action/dist/index.js", [], env, node.path);
    expect({ code: await step.exited, stderr: step.stderr }).toEqual({ code: 0, stderr: "" });
    expect(step.stdout).toContain("from-the-action");
    expect(parseFileCommands(outputFile)).toMatchObject({ "exit-code": "0", status: "completed", stdout: "from-the-action\n" });
  });
}
