import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { execute } from "../../apps/runner/src/executor";
import { testExecutorOptions } from "../helpers/executor";
import { waitFor } from "../helpers/processes";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Once the command (its shell) has exited, its outcome is its exit status. The
 * runner still reads the pipes for a moment before it puts the result
 * together (background processes may hold them); a cancel arriving then must
 * neither turn a completed run into a cancelled one nor kill what the command
 * left running on purpose (`nohup app &`, the way many deploys start a daemon).
 */
describe("a cancel after the command exited", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-after-exit-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("leaves the result completed and the background process running", async () => {
    const run = execute(
      { operationId: "0b5e3c0a-7d1e-4c59-9a53-0b0e7f7f1c11", spec: { kind: "shell", command: "echo $$ > shell.pid; sleep 30 & echo $! > bg.pid; exit 0" }, timeoutSeconds: 30 },
      testExecutorOptions(dir),
      () => undefined,
    );
    const pidIn = (file: string) => waitFor(async () => existsSync(path.join(dir, file)) && Number(readFileSync(path.join(dir, file), "utf8")), 10_000, file);
    const shell = await pidIn("shell.pid");
    const background = await pidIn("bg.pid");
    // Reaped — and so its exit seen by this process, which reaps it — but the result not yet put together.
    await waitFor(async () => !existsSync(`/proc/${shell}`), 10_000, "the shell to exit");
    run.cancel("cancelled by the test");
    try {
      expect(await run.result).toMatchObject({ status: "completed", exitCode: 0 });
      await new Promise((r) => setTimeout(r, 400)); // past the kill grace a stop would have used
      expect(alive(background)).toBe(true);
    } finally {
      if (alive(background)) process.kill(background, "SIGKILL");
    }
  });

  it("keeps nothing of the operation (its env values, its output) while a process it left running holds the pipes", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const opts = testExecutorOptions(dir);
    // The operation as the runner holds it, gone from everything but the executor once the result is in.
    const { op, background } = await (async () => {
      const started = { operationId: "5a4b9a7e-2a39-4a2e-9d1b-7e6c1f0d2b33", spec: { kind: "shell" as const, command: "sleep 30 & echo $! > bg.pid; echo $SECRET" }, env: { SECRET: "canary-s3cr3t" }, stdin: "canary-password", timeoutSeconds: 30 };
      const result = await execute(started, opts, () => undefined).result;
      expect(result).toMatchObject({ status: "completed", exitCode: 0, stdout: "***\n" });
      return { op: new WeakRef(started), background: Number(readFileSync(path.join(dir, "bg.pid"), "utf8")) };
    })();
    try {
      // Past the moment the pipes are let go of (250 ms after the exit), while `sleep` still holds them.
      await new Promise((r) => setTimeout(r, 400));
      // (Not deref'd in between: a WeakRef's target is kept alive until the end of the job that deref'd it.)
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      expect(alive(background)).toBe(true);
      expect(op.deref()).toBeUndefined();
    } finally {
      if (alive(background)) process.kill(background, "SIGKILL");
    }
  });
});

describe("a command that cannot be started for lack of a resource", () => {
  it("fails saying which limit of the server was reached (the runner's open files, here)", () => {
    // In a Node of its own, every descriptor it may open taken first.
    const script = `
      const fs = require("node:fs");
      const { execute } = require(${JSON.stringify(path.resolve(__dirname, "../../apps/runner/dist/executor.js"))});
      const held = [];
      try { for (;;) held.push(fs.openSync("/dev/null", "r")); } catch {}
      execute({ operationId: "0b5e3c0a-7d1e-4c59-9a53-0b0e7f7f1c12", spec: { kind: "shell", command: "true" }, timeoutSeconds: 5 },
        { workdir: "/tmp", rebootCommand: "true", killGraceMs: 100, baseEnv: { PATH: "/usr/bin:/bin" }, now: Date.now }, () => undefined)
        .result.then((r) => { console.log(JSON.stringify({ status: r.status, error: r.error })); process.exit(0); });`;
    const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 30_000 });
    expect(JSON.parse(out.trim())).toEqual({
      status: "failed",
      error: "could not start /bin/sh: spawn /bin/sh EMFILE (the runner's limit on open files was reached: too many operations or their pipes at once)",
    });
  });
});
