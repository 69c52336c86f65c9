import { performance } from "node:perf_hooks";
import { summarize, type LatencySummary } from "./stats";

/** One operation under test; resolves true when it succeeded (a 200, exit code 0). */
export type Operation = () => Promise<boolean>;

export interface LatencyResult extends LatencySummary {
  failures: number;
}

export interface ThroughputResult {
  concurrency: number;
  durationS: number;
  completed: number;
  failures: number;
  opsPerSecond: number;
}

/** Sequential samples (concurrency 1) after an unmeasured warm-up. */
export async function measureLatency(op: Operation, samples: number, warmup: number): Promise<LatencyResult> {
  for (let i = 0; i < warmup; i++) await op();
  const times: number[] = [];
  let failures = 0;
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const ok = await op();
    times.push(performance.now() - t0);
    if (!ok) failures++;
  }
  return { ...summarize(times), failures };
}

/**
 * Closed loop: `concurrency` workers each start the next operation as soon as
 * theirs ends, for `durationMs`. Only successful operations count as throughput.
 */
export async function measureThroughput(op: Operation, concurrency: number, durationMs: number): Promise<ThroughputResult> {
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  let completed = 0;
  let failures = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      if (await op()) completed++;
      else failures++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - t0) / 1000;
  return { concurrency, durationS: elapsedS, completed, failures, opsPerSecond: completed / elapsedS };
}
