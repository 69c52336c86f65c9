import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture } from "../helpers/factories";
import { FakeDocker } from "../helpers/fake-docker";
import { freePort, waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack, useStackWithRunner } from "../helpers/suite";
import { FaultProxy, type ProxyAction, baseEnv, cli, runCli } from "./cli-process";

/**
 * The `runbridge` CLI as CI runs it (a child process on the built dist/), against
 * the real stack: gateway, dispatcher and runner processes, Postgres and Redis.
 */
describe("runbridge CLI", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  let env: Record<string, string>;

  beforeAll(() => {
    ({ stack, fx } = suite);
    env = baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token });
  });

  const exec = (args: string[], extra: Record<string, string> = {}) => cli(["exec", "--server", fx.server.id, ...args], { ...env, ...extra });
  const opIdOf = (stderr: string) => /operation ([0-9a-f-]{36})/.exec(stderr)?.[1];

  it("exits 0 and prints the remote stdout and stderr on success", async () => {
    const r = await exec(["--", "echo hello; echo oops >&2"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hello\n");
    expect(r.stderr).toContain("oops\n");
    expect(r.stderr).toMatch(/completed with exit code 0/);
  });

  it("exits with the remote exit code when the command fails", async () => {
    const r = await exec(["--", "echo partial; exit 42"]);
    expect(r.code).toBe(42);
    expect(r.stdout).toBe("partial\n");
    expect(r.stderr).toMatch(/completed with exit code 42/);
  });

  it("joins several words after -- like ssh does", async () => {
    const r = await exec(["--", "echo", "a", "b;", "echo", "c"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("a b\nc\n");
  });

  it("exits 124 when the operation times out", async () => {
    const r = await exec(["--timeout", "1", "--", "echo started; sleep 30"]);
    expect(r.code).toBe(124);
    expect(r.stdout).toBe("started\n");
    expect(r.stderr).toMatch(/timed out/);
  });

  it("exits 125 when the platform could not run the operation", async () => {
    const r = await exec(["--cwd", "/nonexistent/dir/for/rb", "--", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/failed: .*does not exist/);
  });

  it("exits 130 when the operation is cancelled through the API", async () => {
    const p = runCli(["exec", "--server", fx.server.id, "--", "echo waiting; sleep 60"], env);
    await p.waitFor(/waiting/);
    const id = opIdOf(p.stderr);
    expect(id).toBeDefined();
    const res = await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${fx.token}`).send({});
    expect(res.status).toBe(202);
    expect(await p.exited).toBe(130);
    expect(p.stderr).toMatch(/was cancelled/);
  });

  it("cancels the remote operation on SIGINT (a cancelled CI job) and exits 130", async () => {
    const p = runCli(["exec", "--server", fx.server.id, "--", "echo waiting; sleep 60"], env);
    await p.waitFor(/waiting/);
    const id = opIdOf(p.stderr) as string;
    p.child.kill("SIGINT");
    expect(await p.exited).toBe(130);
    const op = await waitFor(async () => {
      const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
      return row.status !== "running" ? row : null;
    });
    expect(op.status).toBe("cancelled");
  });

  it("exits 130 at a second SIGINT, with what it printed (its output and the reason) all out", async () => {
    // A command that ignores TERM keeps the first cancel in flight for the kill grace; the second signal does not wait for it.
    const p = runCli(["exec", "--server", fx.server.id, "--", "trap '' TERM; seq 1 20000; echo waiting; sleep 60"], env);
    await p.waitFor(/waiting/);
    p.child.kill("SIGINT");
    await p.waitFor(/SIGINT: cancelling operation/, "stderr");
    p.child.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(p.stderr).toMatch(/SIGINT: exiting without waiting for the operation\n/);
    expect(p.stdout.split("\n").filter((l) => /^\d+$/.test(l))).toHaveLength(20000);
  });

  it("cancels the remote operation on a SIGINT that comes before its id is known", async () => {
    const runId = `cli-early-sigint-${Date.now()}`;
    // The proxy shows when the POST has gone out: the signal then comes while it is open and before discovery's first lookup.
    const proxy = await new FaultProxy(stack.url).start();
    try {
      const p = runCli(["exec", "--server", fx.server.id, "--run-id", runId, "--", "echo waiting; sleep 60"], { ...env, RUNBRIDGE_URL: proxy.url });
      await waitFor(async () => proxy.seen.some((s) => s.method === "POST") || null, 10_000, "the POST");
      p.child.kill("SIGINT");
      expect(await p.exited).toBe(130);
      expect(p.stderr).toMatch(/SIGINT: the operation will be cancelled as soon as its id is known/);
      const op = await waitFor(async () => {
        const row = await testPrisma().operation.findFirst({ where: { runId } });
        return row && row.status !== "running" ? row : null;
      });
      expect(op.status).toBe("cancelled");
    } finally {
      await proxy.stop();
    }
  });

  it("exits 77 on an invalid key (401) and on a key whose scope refuses (403)", async () => {
    const bad = await exec(["--", "true"], { RUNBRIDGE_API_KEY: "rca_not_a_real_key" });
    expect(bad.code).toBe(77);
    expect(bad.stderr).toMatch(/HTTP 401/);
    expect(bad.stderr).not.toContain("rca_not_a_real_key");
    const { token } = await createAutomationKey(fx.tenant.id, { allowedOperations: ["deploy"] });
    const refused = await exec(["--", "true"], { RUNBRIDGE_API_KEY: token });
    expect(refused.code).toBe(77);
    expect(refused.stderr).toMatch(/HTTP 403/);
  });

  it("exits 64 without retrying or printing it on a key that cannot go into a header", async () => {
    const key = "rca_pasted\u0001canaryKey42";
    const started = Date.now();
    const r = await exec(["--", "true"], { RUNBRIDGE_API_KEY: key });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/RUNBRIDGE_API_KEY holds a character that cannot be sent in an HTTP header/);
    expect(r.stderr).not.toMatch(/canaryKey42|retrying/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("--help says which commands take --run-id, and operations get and logs refuse it", async () => {
    const help = await cli(["--help"], baseEnv());
    expect(help.stdout + help.stderr).toMatch(/exec, deploy, restart, reboot and registry take --run-id ID/);
    expect(help.stdout + help.stderr).not.toMatch(/Every command takes --run-id/);
    for (const sub of ["get", "logs"]) expect((await cli(["operations", sub, "some-id", "--run-id", "r"], env)).code).toBe(64);
  });

  it("never shows or sends a value given as --env NAME \"$VALUE\" (a space for the =): exits 64, nothing run", async () => {
    const secret = "postgres://u:canary-env-pw@db/x";
    const before = await testPrisma().operation.count({ where: { serverId: fx.server.id } });
    // exec took a stray word into the command it sent (and the API stored); deploy and the others printed it.
    const stray = [
      await exec(["--env", "DATABASE_URL", secret, "--", "make"]),
      await exec(["--env", "DATABASE_URL", secret]),
      await cli(["deploy", "--app", fx.server.id, "--env", "DATABASE_URL", secret], env),
      await cli(["restart", "--server", fx.server.id, "--container", "web", secret], env),
      // A value starting with "-" (a PEM key) is an "unknown option" to the parser, which quoted it whole.
      await exec(["--env", "SSH_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----canary-env-pw", "--", "make"]),
    ];
    for (const r of stray) {
      expect([r.code, r.stdout + r.stderr]).toEqual([64, expect.stringMatching(/not shown: it may be a secret/)]);
      expect(r.stdout + r.stderr).not.toContain("canary-env-pw");
    }
    expect(stray[0]?.stderr).toMatch(/the command goes after --/);
    expect(await testPrisma().operation.count({ where: { serverId: fx.server.id } })).toBe(before);
  });

  it("exits 65 when the API refuses the request (422) and 64 on bad usage", async () => {
    const invalid = await exec(["--timeout", "901", "--", "true"]);
    expect(invalid.code).toBe(65);
    expect(invalid.stderr).toMatch(/HTTP 422: .*timeout_seconds/);
    const noServer = await cli(["exec", "--", "true"], env);
    expect(noServer.code).toBe(64);
    expect(noServer.stderr).toMatch(/--server is required/);
    const noUrl = await cli(["exec", "--server", fx.server.id, "--", "true"], baseEnv({ RUNBRIDGE_API_KEY: fx.token }));
    expect(noUrl.code).toBe(64);
    expect(noUrl.stderr).toMatch(/RUNBRIDGE_URL/);
    const withPassword = await exec(["--", "true"], { RUNBRIDGE_URL: stack.url.replace("http://", "http://user:canary-url-pw@") });
    expect(withPassword.code).toBe(64);
    expect(withPassword.stderr).not.toContain("canary-url-pw");
  });

  it("exits 69 when the API cannot be reached, after retrying", async () => {
    const closed = await freePort();
    const r = await exec(["--", "true"], { RUNBRIDGE_URL: `http://127.0.0.1:${closed}`, RUNBRIDGE_RETRY_ATTEMPTS: "2" });
    expect(r.code).toBe(69);
    expect(r.stderr).toMatch(/ECONNREFUSED.*retrying/s);
    expect(r.stderr).toMatch(/gave up after 2 attempts/);
  });

  it("streams output while the command is still running", async () => {
    const p = runCli(["exec", "--server", fx.server.id, "--", "echo first; sleep 4; echo second"], env);
    await p.waitFor(/first/);
    // The operation has not ended when its first line is on the CLI's stdout.
    expect(p.stdout).not.toContain("second");
    const id = opIdOf(p.stderr) as string;
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe("running");
    expect(await p.exited).toBe(0);
    expect(p.stdout).toBe("first\nsecond\n");
  });

  it("passes env from flags, the local environment and an env file, and never prints the values", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cli-env-"));
    const envFile = path.join(dir, "vars.env");
    writeFileSync(envFile, "# comment\nexport FROM_FILE='canary-file-3k'\nQUOTED=\"canary quoted 2x\"\n");
    const r = await exec(
      ["--env", "FLAG_VAR=canary-flag-9q", "--env", "LOCAL_SECRET", "--env-file", envFile, "--", 'echo "$FLAG_VAR|$LOCAL_SECRET|$FROM_FILE|$QUOTED"; echo ${#LOCAL_SECRET}'],
      { LOCAL_SECRET: "canary-local-7z" },
    );
    expect(r.code).toBe(0);
    // The runner masks every env value in captured output.
    expect(r.stdout).toBe("***|***|***|***\n15\n");
    for (const canary of ["canary-flag-9q", "canary-local-7z", "canary-file-3k", "canary quoted 2x"]) expect(r.stdout + r.stderr).not.toContain(canary);
    const bad = await exec(["--env", "1BAD=x", "--", "true"]);
    expect(bad.code).toBe(64);
    // A value passed where a name belongs (--env "$DATABASE_URL"): refused without showing any of it.
    for (const value of ["postgres://u:Canary5ecret@h/db?sslmode=require", "Canary5ecret-without-equals"]) {
      const leaked = await exec(["--env", value, "--", "true"]);
      expect(leaked.code).toBe(64);
      expect(leaked.stderr).toMatch(/expected NAME or NAME=VALUE/);
      expect(leaked.stderr).not.toMatch(/Canary5ecret|postgres:/);
    }
    const unset = await exec(["--env", "NOT_SET_ANYWHERE", "--", "true"]);
    expect(unset.code).toBe(64);
    expect(unset.stderr).toMatch(/NOT_SET_ANYWHERE is not set/);
  });

  it("names only the line of an env file line it cannot read, never its content", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cli-env-"));
    const envFile = path.join(dir, "vars.env");
    // An unquoted multi-line secret: its second line looks like a variable name.
    writeFileSync(envFile, "TLS_KEY=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCanary\n-----END PRIVATE KEY-----\n");
    const r = await exec(["--env-file", envFile, "--", "true"]);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/vars\.env line 2: expected KEY=VALUE/);
    expect(r.stderr).not.toContain("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCanary");
  });

  it("fills run_id and run_context from a GitHub Actions environment", async () => {
    const github = {
      GITHUB_ACTIONS: "true",
      GITHUB_RUN_ID: `77${Date.now()}`,
      GITHUB_RUN_NUMBER: "12",
      GITHUB_RUN_ATTEMPT: "1",
      GITHUB_REPOSITORY: "myorg/myapp",
      GITHUB_WORKFLOW: "deploy",
      GITHUB_EVENT_NAME: "push",
      GITHUB_ACTOR: "octocat",
      GITHUB_SHA: "abc123def456",
      GITHUB_REF: "refs/heads/main",
      GITHUB_JOB: "ship",
      GITHUB_SERVER_URL: "https://github.com",
    };
    const r = await exec(["--", "echo ok"], github);
    expect(r.code).toBe(0);
    const id = opIdOf(r.stderr) as string;
    const op = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(op.runId).toBe(`github-run-${github.GITHUB_RUN_ID}`);
    expect(op.runContext).toMatchObject({
      provider: "github_actions",
      repository: "myorg/myapp",
      workflow: "deploy",
      trigger: "push",
      actor: "octocat",
      sha: "abc123def456",
      ref: "refs/heads/main",
      job: "ship",
      run_url: `https://github.com/myorg/myapp/actions/runs/${github.GITHUB_RUN_ID}`,
    });
    // --run-id overrides the CI's.
    const own = await exec(["--run-id", "my-own-run", "--", "true"], github);
    const ownOp = await testPrisma().operation.findUniqueOrThrow({ where: { id: opIdOf(own.stderr) as string } });
    expect(ownOp.runId).toBe("my-own-run");
  });

  it("fills run_context from GitLab CI and Jenkins environments, without credentials in URLs", async () => {
    const gl = await exec(["--", "true"], {
      GITLAB_CI: "true",
      CI_PIPELINE_ID: "4242",
      CI_PROJECT_PATH: "group/project",
      CI_PIPELINE_SOURCE: "merge_request_event",
      GITLAB_USER_LOGIN: "dev1",
      CI_COMMIT_SHA: "feedbeef",
      CI_COMMIT_BRANCH: "main",
      CI_JOB_NAME: "deploy-prod",
    });
    const glOp = await testPrisma().operation.findUniqueOrThrow({ where: { id: opIdOf(gl.stderr) as string } });
    expect(glOp.runId).toBe("gitlab-pipeline-4242");
    expect(glOp.runContext).toMatchObject({ provider: "gitlab_ci", repository: "group/project", trigger: "merge_request_event", actor: "dev1", sha: "feedbeef", ref: "refs/heads/main" });

    const jk = await exec(["--", "true"], {
      JENKINS_URL: "https://ci.example.com/",
      BUILD_TAG: "jenkins-app-deploy-31",
      JOB_NAME: "app-deploy",
      BUILD_NUMBER: "31",
      GIT_URL: "https://user:canary-gittoken-5@git.example.com/org/app.git",
      GIT_COMMIT: "0123abcd",
      GIT_BRANCH: "origin/main",
      BUILD_URL: "https://ci.example.com/job/app-deploy/31/",
    });
    const jkOp = await testPrisma().operation.findUniqueOrThrow({ where: { id: opIdOf(jk.stderr) as string } });
    expect(jkOp.runId).toBe("jenkins-app-deploy-31");
    expect(jkOp.runContext).toMatchObject({ provider: "jenkins", repository: "https://git.example.com/org/app.git", workflow: "app-deploy", sha: "0123abcd", ref: "origin/main" });
    expect(JSON.stringify(jkOp.runContext)).not.toContain("canary-gittoken-5");
  });

  // The list endpoint is hidden, so only the retried POST can tell the client what happened.
  it.each<[string, ProxyAction]>([
    // The first POST reaches the gateway (and runs), but its answer never reaches the client.
    ["was lost", "forward-then-drop"],
    // The answer's headers and its first bytes arrive, then the connection drops.
    ["is cut off mid-body", { cutAfterBytes: 10 }],
  ])("retries a POST whose answer %s with the same Idempotency-Key, and the command runs once", async (_, firstPost) => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cli-idem-"));
    const counter = path.join(dir, "runs");
    let posts = 0;
    const proxy = await new FaultProxy(stack.url, (req) => {
      if (req.method === "GET" && /\/operations\?/.test(req.url)) return { status: 404, body: { detail: "No route" } };
      return req.method === "POST" && posts++ === 0 ? firstPost : "forward";
    }).start();
    try {
      const r = await exec(["--", `echo run >> ${counter}; echo done`], { RUNBRIDGE_URL: proxy.url });
      expect(r.stderr).toMatch(/POST \/exec: .*; retrying in/);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("done\n");
      const keys = proxy.seen.filter((s) => s.method === "POST").map((s) => s.headers["idempotency-key"]);
      expect(keys).toHaveLength(2);
      expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(keys[1]).toBe(keys[0]);
      expect(readFileSync(counter, "utf8")).toBe("run\n");
    } finally {
      await proxy.stop();
    }
  });

  it("gives up on a request left unanswered for RUNBRIDGE_REQUEST_TIMEOUT_SECONDS and sends it again", async () => {
    const done = await exec(["--", "echo stored"]);
    const id = opIdOf(done.stderr);
    expect(id).toBeDefined();
    let gets = 0;
    // The first GET is held for good, as by a stalled gateway or proxy; the second goes through.
    const never = new Promise(() => undefined);
    const proxy = await new FaultProxy(stack.url, (req) => (req.method === "GET" && gets++ === 0 ? { holdUntil: never } : "forward")).start();
    try {
      const started = Date.now();
      const r = await cli(["operations", "get", id as string], { ...env, RUNBRIDGE_URL: proxy.url, RUNBRIDGE_REQUEST_TIMEOUT_SECONDS: "2" });
      expect(r.stderr).toMatch(/GET \/operations\/[0-9a-f-]{36}: no answer within 2 s; retrying in/);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(id as string);
      // Without the bound the first attempt waits for fetch's own 300 s.
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await proxy.stop();
    }
  });

  it("refuses a RUNBRIDGE_REQUEST_TIMEOUT_SECONDS that is not a whole number of seconds from 1 to 3600", async () => {
    const r = await exec(["--", "true"], { RUNBRIDGE_REQUEST_TIMEOUT_SECONDS: "0.5" });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/RUNBRIDGE_REQUEST_TIMEOUT_SECONDS must be a whole number from 1 to 3600, got "0.5"/);
  });

  it("retries when the connection is reset before the request arrives", async () => {
    let n = 0;
    const proxy = await new FaultProxy(stack.url, (req) => (req.method === "POST" && n++ < 2 ? "drop" : "forward")).start();
    try {
      const r = await exec(["--", "echo after-resets"], { RUNBRIDGE_URL: proxy.url });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("after-resets\n");
      const keys = new Set(proxy.seen.filter((s) => s.method === "POST").map((s) => s.headers["idempotency-key"]));
      expect(proxy.seen.filter((s) => s.method === "POST").length).toBe(3);
      expect(keys.size).toBe(1);
      expect(r.stderr).toMatch(/retrying/);
    } finally {
      await proxy.stop();
    }
  });

  it("waits out 429 Retry-After and then succeeds", async () => {
    let limited = 0;
    const proxy = await new FaultProxy(stack.url, (req) =>
      req.method === "POST" && limited++ === 0 ? { status: 429, headers: { "Retry-After": "2" }, body: { detail: "Rate limit exceeded" } } : "forward",
    ).start();
    try {
      const started = Date.now();
      const r = await exec(["--", "echo after-429"], { RUNBRIDGE_URL: proxy.url });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("after-429\n");
      expect(r.stderr).toMatch(/rate limited \(429\); retrying in 2 s/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    } finally {
      await proxy.stop();
    }
  });

  /** A stack of their own whose gateway answers a synchronous exec after 1 s, so that the CLI follows the operation. */
  describe("following an operation", () => {
    const slowSuite = useStack({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
    let slow: TestStack;
    beforeAll(() => {
      ({ stack: slow } = slowSuite);
    });

    it("falls back to polling on a server without the list and logs endpoints", async () => {
      const noRoute = (req: { url: string }) => ({ status: 404, body: { detail: `No route for GET ${req.url}` } });
      const proxy = await new FaultProxy(slow.url, (req) =>
        req.method === "GET" && (/\/logs(\?|$)/.test(req.url) || /\/operations\?/.test(req.url)) ? noRoute(req) : "forward",
      ).start();
      try {
        const f = await createFixture();
        await slow.startRunner(f.runnerToken, f.server.id);
        const r = await cli(["exec", "--server", f.server.id, "--", "echo one; sleep 2; echo two; exit 3"], baseEnv({ RUNBRIDGE_URL: proxy.url, RUNBRIDGE_API_KEY: f.token }));
        expect(r.code).toBe(3);
        expect(r.stdout).toBe("one\ntwo\n");
        expect(proxy.seen.some((s) => /\/operations\/[0-9a-f-]{36}$/.test(s.url))).toBe(true);
      } finally {
        await proxy.stop();
      }
    });

    it("rides out an API failing while it follows: 503 from the live log, then 500s from the operation (it keeps running)", async () => {
      let polls = 0;
      const proxy = await new FaultProxy(slow.url, (req) => {
        if (req.method !== "GET") return "forward";
        if (/\/logs(\?|$)/.test(req.url)) return { status: 503, body: { detail: "Live logs are unavailable: Redis is unreachable" } };
        if (/\/operations\/[0-9a-f-]{36}$/.test(req.url) && polls++ < 2) return { status: 500, body: { detail: "Internal server error (error id test)" } };
        return "forward";
      }).start();
      try {
        const f = await createFixture();
        await slow.startRunner(f.runnerToken, f.server.id);
        const r = await cli(
          ["exec", "--server", f.server.id, "--", "echo one; sleep 2; echo two; exit 3"],
          baseEnv({ RUNBRIDGE_URL: proxy.url, RUNBRIDGE_API_KEY: f.token, RUNBRIDGE_RETRY_ATTEMPTS: "2" }),
        );
        expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 3, stdout: "one\ntwo\n" });
        expect(r.stderr).toMatch(/live output is not available now \(HTTP 503\); waiting for the result instead/);
        expect(r.stderr).toMatch(/could not read operation [0-9a-f-]{36} \(HTTP 500\); it may still be running/);
        expect(polls).toBeGreaterThan(2);
      } finally {
        await proxy.stop();
      }
    });
  });

  it("operations get, list and logs read what exec ran", async () => {
    const runId = `cli-ops-${Date.now()}`;
    const first = await exec(["--run-id", runId, "--", "echo out-1; echo err-1 >&2; exit 5"]);
    expect(first.code).toBe(5);
    const id = opIdOf(first.stderr) as string;
    await exec(["--run-id", runId, "--", "echo out-2"]);

    const got = await cli(["operations", "get", id], env);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ operation_id: id, status: "completed", result: { exit_code: 5, stdout: "out-1\n" } });

    const listed = await cli(["operations", "list", "--run-id", runId], env);
    expect(listed.code).toBe(0);
    const ops = JSON.parse(listed.stdout) as { operation_id: string; run_id: string }[];
    expect(ops.length).toBe(2);
    expect(ops.every((o) => o.run_id === runId)).toBe(true);
    expect(ops[1]?.operation_id).toBe(id);

    const logs = await cli(["operations", "logs", id], env);
    expect(logs).toMatchObject({ code: 0, stdout: "out-1\n" });
    expect(logs.stderr).toContain("err-1\n");
    const followed = await cli(["operations", "logs", id, "--follow"], env);
    expect(followed.code).toBe(5);
    expect(followed.stdout).toBe("out-1\n");
  });

  it("operations logs --follow streams an operation started elsewhere", async () => {
    const p = runCli(["exec", "--server", fx.server.id, "--quiet", "--", "echo a1; sleep 2; echo a2"], env);
    const op = await waitFor(async () => testPrisma().operation.findFirst({ where: { serverId: fx.server.id, command: "echo a1; sleep 2; echo a2", status: "running" } }));
    const follower = await cli(["operations", "logs", op.id, "--follow"], env);
    expect(follower.code).toBe(0);
    expect(follower.stdout).toBe("a1\na2\n");
    expect(await p.exited).toBe(0);
    expect(p.stderr).toBe("");
  });
});

/** deploy, restart, reboot and registry login/logout through the CLI, with a fake `docker` on the runner's PATH. */
describe("runbridge CLI: the other operations", () => {
  const docker = new FakeDocker();
  const suite = useStackWithRunner({}, { env: { PATH: docker.path, RUNBRIDGE_REBOOT_COMMAND: "echo reboot requested" } });
  let stack: TestStack;
  let fx: Fixture;
  let env: Record<string, string>;

  beforeAll(() => {
    ({ stack, fx } = suite);
    env = baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token });
  });

  const management = (method: "post", url: string, body: Record<string, unknown>) => stack.api()[method](url).set("Authorization", `Bearer ${fx.apiKey}`).send(body);

  /** An application whose deploy appends a line to the file `runs`: how many times it ran. */
  const countingApp = async (name: string): Promise<{ id: string; runs: string }> => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cli-app-"));
    const runs = path.join(dir, "runs");
    const app = await management("post", "/api/v1/applications", { name: `${name}-${Date.now()}`, server_id: fx.server.id, working_directory: dir, deploy_command: `echo run >> ${runs}` });
    expect(app.status).toBe(201);
    return { id: app.body.id as string, runs };
  };
  const deployCompleted = (id: string) =>
    waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status === "completed", 20_000, "the deploy to end");

  it("deploy --wait streams the deployment and mirrors its exit code; without --wait it prints the accepted ids", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cli-app-"));
    const app = await management("post", "/api/v1/applications", {
      name: `app-${Date.now()}`,
      server_id: fx.server.id,
      working_directory: dir,
      deploy_branch: "main",
      deploy_command: 'echo "deploying $RUNBRIDGE_COMMIT_REF with $FLAG"; test "$FLAG" != fail',
    });
    expect(app.status).toBe(201);
    const ok = await cli(["deploy", "--app", app.body.id, "--ref", "v1.2.3", "--env", "FLAG=canary-deploy-6", "--wait"], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe("deploying v1.2.3 with ***\n");
    const failing = await cli(["deploy", "--app", app.body.id, "--env", "FLAG=fail", "--wait"], env);
    expect(failing.code).toBe(1);
    const detached = await cli(["deploy", "--app", app.body.id], env);
    expect(detached.code).toBe(0);
    const accepted = JSON.parse(detached.stdout) as { operation_id: string; deployment_id: string; status: string };
    expect(accepted).toMatchObject({ status: "running", operation_id: expect.any(String), deployment_id: expect.any(String) });
    const unknown = await cli(["deploy", "--app", "00000000-0000-4000-8000-000000000000"], env);
    expect(unknown.code).toBe(65);
    expect(unknown.stderr).toMatch(/HTTP 404/);
  });

  it("deploy without --wait whose POST's answer is lost: waits out 'still in progress' (409 Retry-After), else finds it by its run; never a failure CI would retry", async () => {
    const { id: appId, runs } = await countingApp("app");
    const inProgress = { status: 409, body: { detail: "A request with Idempotency-Key \"k\" is still in progress" } };
    // 1. The first POST is accepted but its answer lost; the retry meets it "in progress" twice, then gets the replay.
    let posts = 0;
    const replayed = await new FaultProxy(stack.url, (req) => {
      if (req.method !== "POST") return "forward";
      posts++;
      return posts === 1 ? "forward-then-drop" : posts <= 3 ? { ...inProgress, headers: { "Retry-After": "1" } } : "forward";
    }).start();
    try {
      const r = await cli(["deploy", "--app", appId], { ...env, RUNBRIDGE_URL: replayed.url });
      expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/still in progress \(HTTP 409\); retrying/)]);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: "running", operation_id: expect.any(String), deployment_id: expect.any(String) });
      expect(new Set(replayed.seen.filter((s) => s.method === "POST").map((s) => s.headers["idempotency-key"])).size).toBe(1);
    } finally {
      await replayed.stop();
    }
    // 2. Every retry meets a 409 that does not ask to retry (its gateway stopped before answering): found by its run.
    posts = 0;
    const lost = await new FaultProxy(stack.url, (req) => {
      if (req.method !== "POST") return "forward";
      return posts++ === 0 ? "forward-then-drop" : inProgress;
    }).start();
    try {
      const r = await cli(["deploy", "--app", appId], { ...env, RUNBRIDGE_URL: lost.url });
      expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/answer was lost, but operation [0-9a-f-]{36} was created by it/)]);
      const found = JSON.parse(r.stdout) as { operation_id: string };
      // As the lost answer would have said: read back from the operation (its status is whatever it is by now).
      expect(found).toMatchObject({ operation_id: expect.any(String), status: expect.any(String), deployment_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      await deployCompleted(found.operation_id);
    } finally {
      await lost.stop();
    }
    // Each deploy ran once.
    expect(readFileSync(runs, "utf8")).toBe("run\nrun\n");
  });

  it("finds a POST's operation whose answer was lost among more than a page of newer ones in its run (a wide matrix under one run_id), asking without their output", async () => {
    const runId = `cli-deep-run-${Date.now()}`;
    const { id: appId, runs } = await countingApp("app-deep-run");
    // 250 other legs' operations of the same key and run, each with output, all newer than this one (created an hour ahead):
    // the list's newest first puts this invocation's behind them, past its first page.
    const ahead = Date.now() + 3_600_000;
    await testPrisma().operation.createMany({
      data: Array.from({ length: 250 }, (_, i) => ({
        tenantId: fx.tenant.id,
        serverId: fx.server.id,
        automationKeyId: fx.key.id,
        type: "exec",
        command: "true",
        status: "completed",
        exitCode: 0,
        stdout: `leg ${i}\n`.repeat(500),
        timeoutSeconds: 60,
        runId,
        runContext: { invocation_id: randomUUID() },
        createdAt: new Date(ahead + i),
        deliverBy: new Date(ahead + i),
        redisPrefix: "test-fixture-no-dispatcher",
      })),
    });
    // The POST is accepted but its answer lost; every retry meets a 409 that does not ask to retry: found by its run, or a failure.
    let posts = 0;
    const lost = await new FaultProxy(stack.url, (req) => {
      if (req.method !== "POST") return "forward";
      return posts++ === 0 ? "forward-then-drop" : { status: 409, body: { detail: 'A request with Idempotency-Key "k" is still in progress' } };
    }).start();
    try {
      const r = await cli(["deploy", "--app", appId, "--run-id", runId], { ...env, RUNBRIDGE_URL: lost.url });
      expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/answer was lost, but operation [0-9a-f-]{36} was created by it/)]);
      const mine = await testPrisma().operation.findFirstOrThrow({ where: { runId, type: "deploy" } });
      expect(JSON.parse(r.stdout)).toMatchObject({ operation_id: mine.id });
      // Every page asked without output, the second from the first's cursor.
      const lookups = lost.seen.filter((s) => s.method === "GET" && s.url.includes("/operations?"));
      expect(lookups.length).toBeGreaterThanOrEqual(2);
      for (const l of lookups) expect(new URL(l.url, lost.url).searchParams.get("output")).toBe("false");
      expect(lookups.some((l) => new URL(l.url, lost.url).searchParams.has("cursor"))).toBe(true);
      // It ran once.
      await deployCompleted(mine.id);
      expect(readFileSync(runs, "utf8")).toBe("run\n");
    } finally {
      await lost.stop();
    }
  });

  it("a POST whose every attempt ends in a proxy's 502 or 504 (the gateway died or stalled, perhaps after accepting it), or in a 500, is looked up by its run; a 503 (the gateway's own: not started) is not", async () => {
    const { id: appId, runs } = await countingApp("app-bad-gateway");
    for (const status of [502, 504]) {
      // The first attempt reaches the gateway, which accepts it; the proxy answers it, and the retry, with its own error page.
      let posts = 0;
      const proxy = await new FaultProxy(stack.url, (req) => {
        if (req.method !== "POST") return "forward";
        return posts++ === 0 ? { forwardThenStatus: status } : { status, body: { detail: "upstream gone" } };
      }).start();
      try {
        const r = await cli(["deploy", "--app", appId], { ...env, RUNBRIDGE_URL: proxy.url, RUNBRIDGE_RETRY_ATTEMPTS: "2" });
        expect(r.stderr).toMatch(new RegExp(`POST /deploy: HTTP ${status}; retrying in`));
        expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/answer was lost, but operation [0-9a-f-]{36} was created by it/)]);
        const found = JSON.parse(r.stdout) as { operation_id: string };
        await deployCompleted(found.operation_id);
      } finally {
        await proxy.stop();
      }
    }
    // A 500 is not sent again (the gateway may not know whether it recorded it), but looked up all the same.
    let posts = 0;
    const unsure = await new FaultProxy(stack.url, (req) => (req.method === "POST" && posts++ === 0 ? { forwardThenStatus: 500 } : "forward")).start();
    try {
      const r = await cli(["deploy", "--app", appId], { ...env, RUNBRIDGE_URL: unsure.url, RUNBRIDGE_RETRY_ATTEMPTS: "2" });
      expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/answer was lost, but operation [0-9a-f-]{36} was created by it/)]);
      await deployCompleted((JSON.parse(r.stdout) as { operation_id: string }).operation_id);
      expect(posts).toBe(1);
    } finally {
      await unsure.stop();
    }
    // Each deploy ran once, and no CI retry is invited: exit 0.
    expect(readFileSync(runs, "utf8")).toBe("run\nrun\nrun\n");
    const notStarted = await new FaultProxy(stack.url, (req) => (req.method === "POST" ? { status: 503, body: { detail: "it was not started and will not be" } } : "forward")).start();
    try {
      const r = await cli(["deploy", "--app", appId], { ...env, RUNBRIDGE_URL: notStarted.url, RUNBRIDGE_RETRY_ATTEMPTS: "2" });
      expect([r.code, r.stderr]).toEqual([69, expect.stringMatching(/it was not started and will not be/)]);
      expect(notStarted.seen.filter((s) => s.method === "GET")).toEqual([]);
    } finally {
      await notStarted.stop();
    }
  });

  it("deploy without --wait, interrupted before the deployment is accepted, cancels it and exits 130", async () => {
    const app = await management("post", "/api/v1/applications", {
      name: `app-interrupted-${Date.now()}`,
      server_id: fx.server.id,
      working_directory: mkdtempSync(path.join(tmpdir(), "rb-cli-app-")),
      deploy_command: "echo deploying; sleep 60",
    });
    expect(app.status).toBe(201);
    // The proxy holds the deploy POST, so the signal surely comes before the operation id is known.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const proxy = await new FaultProxy(stack.url, (req) => (req.method === "POST" && req.url.endsWith("/deploy") ? { holdUntil: released } : "forward")).start();
    try {
      const p = runCli(["deploy", "--app", app.body.id], { ...env, RUNBRIDGE_URL: proxy.url });
      await waitFor(async () => proxy.seen.some((s) => s.method === "POST") || null, 10_000, "the POST");
      p.child.kill("SIGINT");
      await p.waitFor(/SIGINT: the operation will be cancelled as soon as its id is known/, "stderr");
      release();
      // A CI step interrupted this way must not look successful.
      expect(await p.exited).toBe(130);
      const accepted = JSON.parse(p.stdout) as { operation_id: string };
      expect(proxy.seen.some((s) => s.method === "POST" && s.url.endsWith(`/operations/${accepted.operation_id}/cancel`))).toBe(true);
      expect(p.stderr).toMatch(new RegExp(`operation ${accepted.operation_id} (was|is being) cancelled \\(SIGINT\\); not following it`));
      const op = await waitFor(async () => {
        const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: accepted.operation_id } });
        return row.status !== "running" ? row : null;
      });
      expect(op.status).toBe("cancelled");
    } finally {
      release();
      await proxy.stop();
    }
  });

  it("restart and reboot follow the operation to its end", async () => {
    const restart = await cli(["restart", "--server", fx.server.id, "--container", "web-1"], env);
    // The fake docker prints the restarted container's name, as docker does.
    expect(restart).toMatchObject({ code: 0, stdout: "web-1\n" });
    const badName = await cli(["restart", "--server", fx.server.id, "--container", "bad name"], env);
    expect(badName.code).toBe(65);
    const reboot = await cli(["reboot", "--server", fx.server.id], env);
    expect(reboot.code).toBe(0);
    expect(reboot.stdout).toContain("reboot requested");
  });

  it("registry login exits 0; a failing logout is a warning and exits 0", async () => {
    const cred = await management("post", "/api/v1/registry-credentials", { name: "cli-ghcr", registry_url: "ghcr.io", username: "bot", password: "canary-cli-pw-3" });
    expect(cred.status).toBe(201);
    const login = await cli(["registry", "login", "--server", fx.server.id, "--credential", cred.body.id], env);
    expect(login.code).toBe(0);
    expect(login.stderr).toMatch(/registry ghcr\.io \(ghcr\)/);
    // `docker logout` fails, to show that a failing logout is only a warning.
    docker.failWith("logout", 1);
    try {
      const logout = await cli(["registry", "logout", "--server", fx.server.id, "--registry", "ghcr.io"], env);
      expect(logout.code).toBe(0);
      expect(logout.stderr).toMatch(/warning: operation .* completed with exit code 1/);
    } finally {
      docker.succeed("logout");
    }
    const argv = docker.calls().map((c) => c.argv);
    expect(argv).toContainEqual(["login", "ghcr.io", "--username", "bot", "--password-stdin"]);
    expect(argv).toContainEqual(["logout", "ghcr.io"]);
  });
});
