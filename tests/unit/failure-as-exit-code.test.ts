import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { StartOperation } from "@runbridge/contracts";
import type { Operation } from "@runbridge/db";
import { startMessage } from "../../apps/dispatcher/src/process-spec";
import { execute } from "../../apps/runner/src/executor";
import { testExecutorOptions } from "../helpers/executor";

/**
 * The spec answers a failed registry logout as "a completed operation with a
 * non-zero exit code": a logout whose docker cannot be started, or that
 * times out, ends `completed` with a shell's exit code and the reason on
 * stderr — real processes, through the runner's executor.
 */
describe("failures reported as exit codes (registry logout)", () => {
  const workdir = mkdtempSync(path.join(tmpdir(), "rb-exit-codes-"));
  const opts = testExecutorOptions(workdir);
  const run = (over: Partial<StartOperation>) =>
    execute({ operationId: "6f1c3a52-51a4-4b8e-9a4c-1d2e3f405162", spec: { kind: "argv", argv: ["true"] }, timeoutSeconds: 30, ...over }, opts, () => undefined).result;

  it("the dispatcher asks for it for registry logout only", () => {
    const op = (type: string, params: Record<string, unknown>) =>
      ({ id: "6f1c3a52-51a4-4b8e-9a4c-1d2e3f405162", type, params, timeoutSeconds: 60, deliverBy: new Date(), command: "true", workingDirectory: null }) as unknown as Operation;
    expect(startMessage(op("registry_logout", { registry_url: "ghcr.io" }), {}).failureAsExitCode).toBe(true);
    expect(startMessage(op("restart", { container_name: "web" }), {}).failureAsExitCode).toBeUndefined();
    expect(startMessage(op("exec", {}), {}).failureAsExitCode).toBeUndefined();
  });

  it("a command that is not there: completed, exit 127, the reason on stderr", async () => {
    const missing = path.join(workdir, "no-such-docker");
    const r = await run({ spec: { kind: "argv", argv: [missing, "logout", "ghcr.io"] }, failureAsExitCode: true });
    expect(r).toMatchObject({ status: "completed", exitCode: 127, stderr: `${missing}: command not found on the server\n` });
    expect(r.error).toBeUndefined();
    // Without the flag, as every other operation: failed, no exit code.
    expect(await run({ spec: { kind: "argv", argv: [missing] } })).toMatchObject({ status: "failed", exitCode: null, error: `${missing}: command not found on the server` });
  });

  it("a command that cannot be run: completed, exit 126", async () => {
    const notExecutable = path.join(workdir, "docker-not-executable");
    writeFileSync(notExecutable, "#!/bin/sh\nexit 0\n", { mode: 0o644 });
    const r = await run({ spec: { kind: "argv", argv: [notExecutable] }, failureAsExitCode: true });
    expect(r).toMatchObject({ status: "completed", exitCode: 126, stderr: expect.stringContaining(`could not start ${notExecutable}`) });
  });

  it("a command that times out: completed, exit 124, its output kept and the reason after it", async () => {
    const r = await run({ spec: { kind: "shell", command: "echo partial >&2; sleep 5" }, timeoutSeconds: 1, failureAsExitCode: true });
    expect(r).toMatchObject({ status: "completed", exitCode: 124, stderr: "partial\ntimed out after 1 s; the process group was killed\n" });
    expect(await run({ spec: { kind: "shell", command: "sleep 5" }, timeoutSeconds: 1 })).toMatchObject({ status: "timeout", exitCode: null });
  });

  it("a cancel stays a cancel", async () => {
    const started = execute(
      { operationId: "6f1c3a52-51a4-4b8e-9a4c-1d2e3f405163", spec: { kind: "shell", command: "sleep 5" }, timeoutSeconds: 30, failureAsExitCode: true },
      opts,
      () => undefined,
    );
    setTimeout(() => started.cancel("cancelled on request"), 200);
    expect(await started.result).toMatchObject({ status: "cancelled", exitCode: null, error: "cancelled on request" });
  });
});
