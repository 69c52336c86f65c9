import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { testPrisma } from "../helpers/db";
import { FakeDocker } from "../helpers/fake-docker";
import { ROOT } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";
import { ClientProc, FaultProxy, parseFileCommands } from "./cli-process";

const EXAMPLES = path.join(ROOT, "examples");
const STANDALONE = path.join(ROOT, "apps/cli/standalone/runbridge.cjs");
const NODE_DIR = path.dirname(process.execPath);

/** Runs a shell script the way a CI system would, in a fresh workspace directory. */
async function shell(shellArgs: string[], script: string, env: Record<string, string>, cwd = mkdtempSync(path.join(tmpdir(), "rb-example-ws-"))): Promise<{ code: number | null; out: string }> {
  const child = spawn("/bin/sh", [...shellArgs, script], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, out };
}

/**
 * The examples in examples/ run as written (placeholders replaced by real
 * values, as a user configures them) against the real stack. The gateway's
 * wait bound is 1 s here so the polling paths are exercised too.
 */
describe("examples/", () => {
  const docker = new FakeDocker();
  const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } }, { env: { PATH: docker.path } });
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });
  /** The argv of every docker call but the first `before`, oldest first. */
  const dockerArgvSince = (before: number) => docker.calls().slice(before).map((c) => c.argv);

  const baseEnv = () => ({ PATH: `${NODE_DIR}:/usr/local/bin:/usr/bin:/bin`, HOME: process.env.HOME ?? "/tmp" });
  const lastOp = () => testPrisma().operation.findFirstOrThrow({ where: { serverId: fx.server.id }, orderBy: { createdAt: "desc" } });

  describe("curl/runbridge-exec.sh", () => {
    const script = path.join(EXAMPLES, "curl/runbridge-exec.sh");
    const run = (args: string[], extra: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(script, args, { env: { ...baseEnv(), RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("exit", (code) => resolve({ code, stdout, stderr }));
      });

    it("prints the output and exits with the command's exit code", async () => {
      const r = await run([fx.server.id, "echo hi; echo err >&2; exit 7"]);
      expect(r.code).toBe(7);
      expect(r.stdout).toBe("hi\n");
      expect(r.stderr).toContain("err\n");
    });

    it("polls an operation that outlasts the request, and sends run_id from the CI environment", async () => {
      const r = await run([fx.server.id, "echo a; sleep 2; echo b"], { GITHUB_RUN_ID: "5150" });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("a\nb\n");
      expect((await lastOp()).runId).toBe("github-run-5150");
    });

    it("exits 124 on timeout and 1 when the API refuses", async () => {
      expect((await run([fx.server.id, "sleep 30", "1"])).code).toBe(124);
      const refused = await run([fx.server.id, "true"], { RUNBRIDGE_API_KEY: "rca_invalid" });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/HTTP 401: Invalid API key/);
    });

    it("sends the POST again (same Idempotency-Key) on no answer, 502, 429 and 503, and the command runs once; curl retries a poll on any error", async () => {
      const runs = path.join(mkdtempSync(path.join(tmpdir(), "rb-example-runs-")), "runs");
      let posts = 0;
      let polls = 0;
      const proxy = await new FaultProxy(stack.url, (req) => {
        if (req.method === "POST") {
          posts++;
          if (posts === 1) return { status: 502, body: { detail: "Bad Gateway" } };
          if (posts === 2) return "drop";
          if (posts === 3) return { status: 429, headers: { "Retry-After": "1" }, body: { detail: "Rate limit exceeded" } };
          if (posts === 4) return { status: 503, headers: { "Retry-After": "1" }, body: { detail: "Service temporarily unavailable" } };
          return "forward";
        }
        return polls++ === 0 ? { status: 500, body: { detail: "Internal error" } } : "forward";
      }).start();
      try {
        // Outlasts the gateway's 1 s hold: the script polls.
        const r = await run([fx.server.id, `echo run >> ${runs}; sleep 2; echo done`], { RUNBRIDGE_URL: proxy.url });
        expect([r.code, r.stdout]).toEqual([0, "done\n"]);
        expect(r.stderr).toMatch(/POST \/exec: HTTP 502; retrying in 1 s\n[^]*POST \/exec: no answer; retrying in 2 s\n[^]*POST \/exec: HTTP 429; retrying in 1 s\nrunbridge: POST \/exec: HTTP 503; retrying in 1 s\n/);
        const keys = proxy.seen.filter((s) => s.method === "POST").map((s) => s.headers["idempotency-key"]);
        expect(keys).toHaveLength(5);
        expect(new Set(keys).size).toBe(1);
        expect(polls).toBeGreaterThanOrEqual(2);
        expect(readFileSync(runs, "utf8")).toBe("run\n");
      } finally {
        await proxy.stop();
      }
    });

    it("does not send the POST again after a 500, which the gateway answers when the command may still run", async () => {
      const detail = "PostgreSQL did not confirm recording the operation, and it could not be settled: it may still run. Check it before retrying.";
      const proxy = await new FaultProxy(stack.url, (req) => (req.method === "POST" ? { status: 500, body: { detail } } : "forward")).start();
      try {
        const r = await run([fx.server.id, "true"], { RUNBRIDGE_URL: proxy.url });
        expect([r.code, r.stderr]).toEqual([1, expect.stringContaining(`runbridge: HTTP 500: ${detail}`)]);
        expect(proxy.seen.filter((s) => s.method === "POST")).toHaveLength(1);
      } finally {
        await proxy.stop();
      }
    });
  });

  it("gitlab/.gitlab-ci.yml: the deploy job's script runs and passes", async () => {
    const doc = parseYaml(readFileSync(path.join(EXAMPLES, "gitlab/.gitlab-ci.yml"), "utf8")) as {
      variables: Record<string, string>;
      deploy: { script: string[]; image: string };
    };
    expect(doc.deploy.image).toBe("node:24");
    const before = docker.calls().length;
    const canary = "postgres://app:canary-gitlab-db-8@db/app";
    const { code, out } = await shell(["-e", "-c"], doc.deploy.script.join("\n"), {
      ...baseEnv(),
      ...doc.variables,
      // Project CI/CD variables (they override the file's own), and GitLab's predefined ones.
      RUNBRIDGE_CLI: `file://${STANDALONE}`,
      RUNBRIDGE_URL: stack.url,
      RUNBRIDGE_API_KEY: fx.token,
      RUNBRIDGE_SERVER_ID: fx.server.id,
      DATABASE_URL: canary,
      GITLAB_CI: "true",
      CI_PIPELINE_ID: "8080",
      CI_PROJECT_PATH: "group/app",
      CI_COMMIT_SHA: "0a1b2c3d4e5f",
      CI_COMMIT_SHORT_SHA: "0a1b2c3d",
      CI_COMMIT_BRANCH: "main",
      CI_PIPELINE_SOURCE: "push",
      GITLAB_USER_LOGIN: "dev",
    });
    expect({ code, out }).toMatchObject({ code: 0 });
    expect(dockerArgvSince(before)).toEqual([
      ["compose", "-f", "/opt/app/compose.yml", "pull"],
      ["compose", "-f", "/opt/app/compose.yml", "up", "-d"],
      ["compose", "-f", "/opt/app/compose.yml", "ps"],
    ]);
    expect(out).not.toContain("canary-gitlab-db-8");
    const op = await lastOp();
    expect(op.runId).toBe("gitlab-pipeline-8080");
    expect(op.runContext).toMatchObject({ provider: "gitlab_ci", repository: "group/app", sha: "0a1b2c3d4e5f" });
  });

  it("jenkins/Jenkinsfile: every sh step runs and passes", async () => {
    const text = readFileSync(path.join(EXAMPLES, "jenkins/Jenkinsfile"), "utf8");
    const steps = [...text.matchAll(/sh '''\n([\s\S]*?)'''/g)].map((m) => m[1] ?? "");
    expect(steps.length).toBe(3);
    const before = docker.calls().length;
    // One workspace for the whole pipeline, as Jenkins has.
    const workspace = mkdtempSync(path.join(tmpdir(), "rb-example-jenkins-"));
    for (const step of steps) {
      // Jenkins runs sh steps with `sh -xe`; the environment block's values are configured by the user.
      const { code, out } = await shell(["-xe", "-c"], step, {
        ...baseEnv(),
        RUNBRIDGE_CLI: `file://${STANDALONE}`,
        RUNBRIDGE_URL: stack.url,
        RUNBRIDGE_API_KEY: fx.token,
        RUNBRIDGE_SERVER_ID: fx.server.id,
        DATABASE_URL: "canary-jenkins-db-2",
        JENKINS_URL: "https://jenkins.example.com/",
        BUILD_TAG: "jenkins-app-deploy-12",
        BUILD_NUMBER: "12",
        JOB_NAME: "app-deploy",
      }, workspace);
      expect({ code, out }).toMatchObject({ code: 0 });
      expect(out).not.toContain("canary-jenkins-db-2");
    }
    expect(dockerArgvSince(before).map((c) => c.slice(3))).toEqual([["pull"], ["up", "-d"], ["ps"]]);
    expect((await lastOp()).runId).toBe("jenkins-app-deploy-12");
  });

  it("github-actions/deploy.yml: the Action steps run with their inputs, then the post step logs out", async () => {
    const workflow = parseYaml(readFileSync(path.join(EXAMPLES, "github-actions/deploy.yml"), "utf8")) as {
      jobs: Record<string, { steps: { id?: string; uses?: string; with?: Record<string, string | number>; run?: string }[] }>;
    };
    const action = parseYaml(readFileSync(path.join(ROOT, "packages/github-action/action.yml"), "utf8")) as {
      inputs: Record<string, { required?: boolean; default?: string }>;
      outputs: Record<string, unknown>;
    };
    const cred = await stack
      .api()
      .post("/api/v1/registry-credentials")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: "ghcr-example", registry_url: "ghcr.io", username: "bot", password: "canary-example-pw" });
    expect(cred.status).toBe(201);
    const appDir = mkdtempSync(path.join(tmpdir(), "rb-example-app-"));
    const context: Record<string, string> = {
      "vars.RUNBRIDGE_URL": stack.url,
      "vars.RUNBRIDGE_SERVER_ID": fx.server.id,
      "vars.GHCR_CREDENTIAL_ID": cred.body.id,
      "vars.APP_DIR": appDir,
      "secrets.RUNBRIDGE_API_KEY": fx.token,
      "secrets.DATABASE_URL": "postgres://app:canary-gh-db-1@db/app",
      "github.sha": "feedface",
    };
    const expand = (v: string | number) =>
      String(v).replace(/\$\{\{\s*([\w.-]+)\s*\}\}/g, (_m, name: string) => {
        const value = context[name];
        if (value === undefined) throw new Error(`the example uses \${{ ${name} }}, which this test does not provide`);
        return value;
      });

    const steps = workflow.jobs.deploy?.steps ?? [];
    const actionSteps = steps.filter((s) => s.uses?.includes("/packages/github-action@"));
    expect(actionSteps.length).toBe(2);
    const states: Record<string, string>[] = [];
    const before = docker.calls().length;
    for (const step of actionSteps) {
      const inputs = step.with ?? {};
      for (const name of Object.keys(inputs)) expect(Object.keys(action.inputs)).toContain(name);
      const env: Record<string, string> = { ...baseEnv(), GITHUB_ACTIONS: "true", GITHUB_RUN_ID: "31337", GITHUB_REPOSITORY: "your-org/app" };
      for (const [name, spec] of Object.entries(action.inputs)) if (spec.default !== undefined) env[`INPUT_${name.toUpperCase()}`] = spec.default;
      for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = expand(value);
      const dir = mkdtempSync(path.join(tmpdir(), "rb-example-gh-"));
      env.GITHUB_OUTPUT = path.join(dir, "output");
      env.GITHUB_STATE = path.join(dir, "state");
      const main = new ClientProc("packages/github-action/dist/index.js", [], env);
      expect({ code: await main.exited, log: main.stdout }).toMatchObject({ code: 0 });
      // The secret shows only in its own add-mask command.
      expect(main.stdout.split("canary-gh-db-1").length - 1).toBe(step.with?.env ? 1 : 0);
      const state = parseFileCommands(env.GITHUB_STATE);
      if (Object.keys(state).length) states.push({ ...env, ...Object.fromEntries(Object.entries(state).map(([k, v]) => [`STATE_${k}`, v])) });
    }
    // The job ends: GitHub runs the post step of the registry-login step.
    expect(states.length).toBe(1);
    const post = new ClientProc("packages/github-action/dist/post.js", [], states[0] as Record<string, string>);
    expect(await post.exited).toBe(0);
    expect(dockerArgvSince(before).map((c) => c.slice(0, 2))).toEqual([["login", "ghcr.io"], ["compose", "pull"], ["compose", "up"], ["logout", "ghcr.io"]]);
    // Outputs the workflow reads exist.
    const text = readFileSync(path.join(EXAMPLES, "github-actions/deploy.yml"), "utf8");
    for (const m of text.matchAll(/steps\.[\w-]+\.outputs\.([\w-]+)/g)) expect(Object.keys(action.outputs)).toContain(m[1]);
  });

  it("every example that downloads the standalone CLI points at the committed file", () => {
    for (const file of ["gitlab/.gitlab-ci.yml", "jenkins/Jenkinsfile", "github-actions/deploy.yml"]) {
      const text = readFileSync(path.join(EXAMPLES, file), "utf8");
      expect(text).toContain("/apps/cli/standalone/runbridge.cjs");
    }
    expect(existsSync(STANDALONE)).toBe(true);
  });
});
