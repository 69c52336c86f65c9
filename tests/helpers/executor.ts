import type { ExecutorOptions } from "../../apps/runner/src/executor";

/** What the executor runs with in the tests that call it directly: commands in `workdir`, a short kill grace, only PATH inherited. */
export function testExecutorOptions(workdir: string): ExecutorOptions {
  return { workdir, rebootCommand: "true", killGraceMs: 200, baseEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, now: Date.now };
}
