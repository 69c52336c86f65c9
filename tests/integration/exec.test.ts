import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { findLeaks } from "../helpers/leak-scan";
import { ROOT, waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** exec end to end: gateway → BullMQ → dispatcher → socket.io → runner process → Postgres. */
describe("POST /api/automation/v1/exec", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const exec = (body: Record<string, unknown>) =>
    stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, ...body });

  it("returns the full result of a command that succeeds", async () => {
    const res = await exec({ command: "echo hello; echo oops >&2" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "hello\n", stderr: "oops\n" });
    expect(res.body.operation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof res.body.duration_ms).toBe("number");
  });

  it("takes the server's id in upper case or in braces, as the same server (its runner is connected to either)", async () => {
    // Long connected: the gateway does not wait for a runner seen this recently to come back.
    await testPrisma().server.update({ where: { id: fx.server.id }, data: { lastSeenAt: new Date(Date.now() - 3_600_000) } });
    for (const serverId of [fx.server.id.toUpperCase(), `{${fx.server.id}}`]) {
      const res = await exec({ server_id: serverId, command: "echo same" });
      expect({ status: res.status, body: res.body as unknown }).toMatchObject({ status: 200, body: { status: "completed", stdout: "same\n" } });
    }
  });

  it("reports a non-zero exit as completed with that exit code", async () => {
    const res = await exec({ command: "echo partial; exit 42" });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 42, stdout: "partial\n" });
  });

  it("reports death by a signal as 128 + its number, as a shell does, for every signal", async () => {
    for (const [signal, code] of [
      ["TERM", 143],
      ["FPE", 136],
      ["USR1", 138],
      ["XCPU", 152],
    ] as const) {
      const res = await exec({ command: `kill -${signal} $$` });
      expect(res.body).toMatchObject({ status: "completed", exit_code: code });
    }
  });

  it("runs in the requested working directory", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cwd-"));
    const res = await exec({ command: "pwd", working_directory: dir });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: `${dir}\n` });
  });

  it("fails, saying why, when the working directory does not exist", async () => {
    const res = await exec({ command: "true", working_directory: "/nonexistent/dir/for/rb" });
    expect(res.body.status).toBe("failed");
    expect(res.body.error).toMatch(/working directory .* does not exist/);
    const op = await stack.api().get(`/api/automation/v1/operations/${res.body.operation_id}`).set("Authorization", `Bearer ${fx.token}`);
    expect(op.body).toMatchObject({ status: "failed", error: expect.stringMatching(/does not exist/) });
  });

  it("fails, saying why, when the working directory is a file", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "rb-cwd-")), "plain-file");
    writeFileSync(file, "");
    const res = await exec({ command: "true", working_directory: file });
    expect(res.body).toMatchObject({ status: "failed", exit_code: null, error: `working directory ${file} is not a directory` });
  });

  it("injects env into the command and masks the values in captured output", async () => {
    const res = await exec({
      command: 'test "$DB_URL" = "postgres://u:canary-pw-1@db/x" && test "$EMPTY" = "" && echo "len=${#API_KEY}" && echo "key=$API_KEY"',
      env: { DB_URL: "postgres://u:canary-pw-1@db/x", API_KEY: "canary-secret-value-7", EMPTY: "" },
    });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
    expect(res.body.stdout).toBe("len=21\nkey=***\n");
  });

  it("does not leak the runner's own configuration into commands", async () => {
    // The test runner is started with LOG_LEVEL, as the installed one is: not the command's to inherit.
    const res = await exec({ command: "env | grep -c -e '^RUNBRIDGE_' -e '^LOG_LEVEL=' || true" });
    expect(res.body.stdout.trim()).toBe("0");
  });

  it("stores run_id, run_context and env key names, never env values", async () => {
    const canary = `canary-${Date.now()}-zq9`;
    const res = await exec({
      command: "echo run",
      env: { SECRET_ONE: canary, OTHER: `${canary}-2` },
      run_id: "github-run-12345",
      run_context: { provider: "github_actions", repository: "myorg/myapp", workflow: "deploy", trigger: "push", actor: "octocat", sha: "abc123", ref: "refs/heads/main" },
    });
    expect(res.body.status).toBe("completed");
    const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
    expect(op.envKeys.sort()).toEqual(["OTHER", "SECRET_ONE"]);
    expect(op.runId).toBe("github-run-12345");
    expect(op.runContext).toMatchObject({ repository: "myorg/myapp", sha: "abc123", actor: "octocat" });
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: op.id } });
    expect(audit.map((a) => a.type).sort()).toEqual(["operation.created", "operation.finished"]);
    const created = audit.find((a) => a.type === "operation.created");
    expect(created?.data).toMatchObject({ env_keys: ["SECRET_ONE", "OTHER"], command: "echo run" });
    expect(created?.runId).toBe("github-run-12345");

    // The whole database as a backup would hold it (which does hold the operation), the job
    // queue in Redis (job data carries env sealed) and every process's log have no trace of the value.
    expect(await findLeaks(stack, op.id)).toContain("postgres dump");
    expect(await findLeaks(stack, canary)).toEqual([]);
  });

  it("kills the whole process group at timeout_seconds and keeps the output so far", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-timeout-"));
    const pidFile = path.join(dir, "bg.pid");
    const started = Date.now();
    const res = await exec({ command: `sleep 300 & echo $! > ${pidFile}; echo before-timeout; sleep 300`, timeout_seconds: 1 });
    expect(res.body.status).toBe("timeout");
    expect(res.body.stdout).toBe("before-timeout\n");
    expect(res.body.error).toMatch(/timed out after 1 s/);
    expect(Date.now() - started).toBeLessThan(10_000);
    const bgPid = Number(readFileSync(pidFile, "utf8"));
    // The backgrounded child is gone too (or a zombie awaiting its reaper), not left running.
    await waitFor(async () => !isAlive(bgPid), 5000, "background child to die");
  });

  it("answers `running` when the wait bound passes, and the result is then polled", async () => {
    const slow = await TestStack.start({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
    try {
      const f = await createFixture();
      await slow.startRunner(f.runnerToken, f.server.id);
      const res = await slow.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${f.token}`).send({ server_id: f.server.id, command: "sleep 2; echo done" });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
      // Readable at once.
      const first = await slow.api().get(`/api/automation/v1/operations/${res.body.operation_id}`).set("Authorization", `Bearer ${f.token}`);
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ operation_id: res.body.operation_id, operation_type: "exec", status: "running", result: null, server_id: f.server.id, server_name: f.server.name });
      const done = await waitFor(async () => {
        const r = await slow.api().get(`/api/automation/v1/operations/${res.body.operation_id}`).set("Authorization", `Bearer ${f.token}`);
        return r.body.status === "completed" ? r.body : null;
      }, 10_000);
      expect(done.result).toMatchObject({ exit_code: 0, stdout: "done\n", stderr: "" });
      expect(done.started_at).toEqual(expect.any(String));
      expect(done.completed_at).toEqual(expect.any(String));
    } finally {
      await slow.stop();
    }
  });

  it("is delivered when the accepting gateway's clock is two minutes behind (the delivery deadline is PostgreSQL's)", async () => {
    const slow = await stack.startGatewayProcess({ NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_SKEW_MS: "-120000" });
    const res = await fetch(`${slow.url}/api/automation/v1/exec`, {
      method: "POST",
      headers: { Authorization: `Bearer ${fx.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ server_id: fx.server.id, command: "echo on-time" }),
    });
    expect(await res.json()).toMatchObject({ status: "completed", exit_code: 0, stdout: "on-time\n" });
  });

  it("bounds captured output and marks the truncation", async () => {
    const res = await exec({ command: "head -c 1500000 /dev/zero | tr '\\0' a; echo END" });
    expect(res.body.status).toBe("completed");
    expect(res.body.stdout_truncated).toBe(true);
    expect(Buffer.byteLength(res.body.stdout)).toBeLessThanOrEqual(1024 * 1024);
    expect(res.body.stdout.endsWith("aaaaEND\n")).toBe(true);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  return !(existsSync(stat) && readFileSync(stat, "utf8").split(") ")[1]?.startsWith("Z"));
}
