import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createOperation, createServer } from "../helpers/factories";
import { findLeaks } from "../helpers/leak-scan";
import { waitFor } from "../helpers/processes";
import { runnerResult, scriptedRunner } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

const MiB = 1024 * 1024;
/** The gateway answers an exec after timeout + 3 s at most: a result that never arrives shows as `running`. */
const TIMEOUT_SECONDS = 10;
const PROMPT_MS = 15_000;

/** Output that is awkward to carry: control bytes, invalid UTF-8, NUL, and secrets cut by truncation. */
describe("exec output that is hard to deliver or store", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const exec = async (body: Record<string, unknown>) => {
    const t0 = Date.now();
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, timeout_seconds: TIMEOUT_SECONDS, ...body });
    return { body: res.body as Record<string, unknown>, ms: Date.now() - t0 };
  };
  const stored = (id: unknown) => testPrisma().operation.findUniqueOrThrow({ where: { id: String(id) } });

  it("delivers a full cap of NUL bytes (6x larger as JSON escapes) promptly", async () => {
    const { body, ms } = await exec({ command: `head -c ${MiB} /dev/zero` });
    expect(body).toMatchObject({ status: "completed", exit_code: 0, stdout_truncated: true, stderr_truncated: false });
    expect(ms).toBeLessThan(PROMPT_MS);
    const row = await stored(body.operation_id);
    expect(row.stdout).toMatch(/^\uFFFD+$/);
  });

  it("delivers a full cap of random bytes on both streams promptly", async () => {
    const { body, ms } = await exec({ command: `head -c ${MiB} /dev/urandom; head -c ${MiB} /dev/urandom >&2` });
    expect(body).toMatchObject({ status: "completed", exit_code: 0, stdout_truncated: true, stderr_truncated: true });
    expect(ms).toBeLessThan(PROMPT_MS);
    const row = await stored(body.operation_id);
    expect(row.stdout?.includes("\u0000")).toBe(false);
    expect(row.stdout?.length).toBeGreaterThan(0);
  });

  it("reports promptly while a background process holds the pipes, and that process can still write to them", async () => {
    // `nohup app &` and daemons keep the command's stdout: closing it once the shell exits
    // would kill them with SIGPIPE at their next write.
    const marks = mkdtempSync(path.join(tmpdir(), "rb-bg-"));
    const { body, ms } = await exec({ command: `(sleep 1; touch ${marks}/before; echo late; touch ${marks}/after) & echo started` });
    expect(body).toMatchObject({ status: "completed", exit_code: 0, stdout: "started\n" });
    expect(ms).toBeLessThan(1000);
    await waitFor(async () => existsSync(path.join(marks, "before")), 5000, "the background process to write");
    await waitFor(async () => existsSync(path.join(marks, "after")), 2000, "the background process to survive its write");
  });

  it("stores a NUL in the output as U+FFFD", async () => {
    const { body } = await exec({ command: "printf 'a\\0b'; printf 'c\\0' >&2" });
    expect(body).toMatchObject({ status: "completed", exit_code: 0, stdout: "a\uFFFDb", stderr: "c\uFFFD", stdout_truncated: false });
    const row = await stored(body.operation_id);
    expect([row.stdout, row.stderr]).toEqual(["a\uFFFDb", "c\uFFFD"]);
  });

  it("masks the tail of a secret that truncation cut in half", async () => {
    // Random, so its tail is found nowhere else (this database outlives test runs).
    const canary = `canary-${randomBytes(12).toString("base64url")}`;
    // The cut falls 10 characters before the end of the canary: only its last 10 characters are kept.
    const filler = MiB - 10;
    const { body } = await exec({ command: `printf %s "$K"; head -c ${filler} /dev/zero | tr '\\0' a`, env: { K: canary } });
    expect(body).toMatchObject({ status: "completed", exit_code: 0, stdout_truncated: true });
    const stdout = String(body.stdout);
    expect(stdout.startsWith("***a")).toBe(true);
    expect(stdout.slice(3, 100)).toBe("a".repeat(97));
    for (const tail of [canary.slice(-7)]) expect(await findLeaks(stack, tail)).toEqual([]);
  });

  it("stores a result with NUL sent by an older runner instead of refusing it forever", async () => {
    // A scripted runner (the real wire protocol), sending what a runner without the sanitising would.
    const { server, runnerToken } = await createServer(fx.tenant.id);
    const op = await createOperation(fx.tenant.id, server.id);
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, runnerToken);
    try {
      await stack.waitRunnerConnected(server.id);
      const result = runnerResult(op.id, { status: "failed", exitCode: null, stdout: "x\u0000y", stderr: "\u0000", error: "bad\u0000name" });
      expect(await socket.timeout(5000).emitWithAck("operation:result", result)).toMatchObject({ stored: true });
      await waitFor(async () => (await stored(op.id)).status === "failed", 5000, "the result to be stored");
      expect(await stored(op.id)).toMatchObject({ stdout: "x\uFFFDy", stderr: "\uFFFD", error: "bad\uFFFDname" });
    } finally {
      socket.disconnect();
    }
  });
});
