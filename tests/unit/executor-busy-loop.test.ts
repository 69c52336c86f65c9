import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execute } from "../../apps/runner/src/executor";
import { testExecutorOptions } from "../helpers/executor";
import { waitFor } from "../helpers/processes";

/**
 * A runner busy with many operations runs its event loop seconds behind. Timers run before the loop
 * reads what waits in the pipes, so a result taken by the clock alone, a moment after the command
 * exited, was put together before the command's last output had been read: it lost it, saying
 * nothing (seen in a fan-out of 150 commands, 30 of them stored with an empty stdout).
 */
describe("the result of a command that exits while the runner's loop is behind", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-busy-loop-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("holds all the output written before the result is taken, however late the loop reads it", async () => {
    const run = execute(
      // Its last line comes from a process it started, a tenth of a second after its shell exits (while the loop is held up).
      { operationId: "4d0b9a52-3f59-4d3c-8f1e-6a7c2b1d9e01", spec: { kind: "shell", command: "echo head; echo $$ > shell.pid; (sleep 0.1; echo tail) & exit 0" }, timeoutSeconds: 30 },
      testExecutorOptions(dir),
      () => undefined,
    );
    const shell = await waitFor(async () => existsSync(path.join(dir, "shell.pid")) && Number(readFileSync(path.join(dir, "shell.pid"), "utf8")), 10_000, "the shell's pid");
    // Reaped, so its exit has been handled by this process; then the loop is held up past the 250 ms after it.
    await waitFor(async () => !existsSync(`/proc/${shell}`), 10_000, "the shell to exit");
    // Held up after the loop's reads (in its check phase, as a busy runner's other work would be): its next
    // turn starts with the timers, the one after the exit long due, before it reads the pipes again.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        const until = performance.now() + 600;
        while (performance.now() < until) {
          // A busy runner: other operations' work, on the one thread.
        }
        resolve();
      }),
    );
    expect(await run.result).toMatchObject({ status: "completed", exitCode: 0, stdout: "head\ntail\n", stdoutTruncated: false });
  });
});
