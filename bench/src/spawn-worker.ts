/**
 * The spawn baseline runs here, in a Node process that does nothing else. How
 * long a fork takes grows with the memory of the process that forks, and the
 * bench's own process holds HTTP agents, autocannon and every sample: spawning
 * from it would make the baseline slower than Node can spawn, and flatter
 * runbridge (whose runner is a small process of its own).
 *
 * Asked over IPC by bench/src/spawn-baseline.ts; answers each request with its result.
 */
import { spawn } from "node:child_process";
import { measureThroughput, sampler, type Operation } from "./load";
import type { SpawnRequest, SpawnReply } from "./spawn-baseline";

const spawnTrue: Operation = () =>
  new Promise((resolve) => {
    const child = spawn("sh", ["-c", "true"], { stdio: "ignore" });
    child.once("error", () => resolve(false));
    child.once("exit", (code) => resolve(code === 0));
  });

const sample = sampler(spawnTrue);

process.on("message", (req: SpawnRequest) => {
  const work: Promise<SpawnReply> =
    req.kind === "latency"
      ? sample(req.samples).then((result) => ({ id: req.id, kind: "latency", result }))
      : measureThroughput(spawnTrue, req.concurrency, req.durationMs).then((result) => ({ id: req.id, kind: "throughput", result }));
  void work.then((reply) => process.send?.(reply));
});
process.on("disconnect", () => process.exit(0));
