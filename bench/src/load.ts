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
  const sample = sampler(op);
  await sample(warmup);
  const { times, failures } = await sample(samples);
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

/** Takes `n` sequential latency samples of something, wherever it runs. */
export type Sampler = (n: number) => Promise<{ times: number[]; failures: number }>;

/** Samples of an operation run in this process. */
export function sampler(op: Operation): Sampler {
  return async (n) => {
    const times: number[] = [];
    let failures = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const ok = await op();
      times.push(performance.now() - t0);
      if (!ok) failures++;
    }
    return { times, failures };
  };
}

/**
 * Latency of several operations measured in alternating blocks (a, b, c, a,
 * b, c, ...) after each one's warm-up. On a machine whose speed drifts during
 * a run (a shared VM), every operation sees the same mix of fast and slow
 * moments, so their ratios hold even when the absolute figures move.
 */
export async function interleavedLatency<K extends string>(ops: Record<K, { sample: Sampler; samples: number; warmup: number }>, blocks: number): Promise<Record<K, LatencyResult>> {
  const names = Object.keys(ops) as K[];
  const times = new Map<K, number[]>(names.map((k) => [k, []]));
  const failures = new Map<K, number>(names.map((k) => [k, 0]));
  for (const k of names) if (ops[k].warmup > 0) await ops[k].sample(ops[k].warmup);
  for (let block = 0; block < blocks; block++) {
    for (const k of names) {
      // Samples spread over the blocks; the last block takes the remainder.
      const { sample, samples } = ops[k];
      const per = Math.ceil(samples / blocks);
      const take = Math.min(per, samples - per * block);
      if (take <= 0) continue;
      const got = await sample(take);
      times.get(k)?.push(...got.times);
      failures.set(k, (failures.get(k) ?? 0) + got.failures);
    }
  }
  return Object.fromEntries(names.map((k) => [k, { ...summarize(times.get(k) ?? []), failures: failures.get(k) ?? 0 }])) as Record<K, LatencyResult>;
}

/** Throughput runs of one operation at one concurrency (rounds of an interleaved measurement) as one result. */
export function mergeThroughput(parts: readonly ThroughputResult[]): ThroughputResult {
  const first = parts[0];
  if (!first) throw new Error("no throughput runs to merge");
  const durationS = parts.reduce((a, p) => a + p.durationS, 0);
  const completed = parts.reduce((a, p) => a + p.completed, 0);
  const failures = parts.reduce((a, p) => a + p.failures, 0);
  return { concurrency: first.concurrency, durationS, completed, failures, opsPerSecond: durationS > 0 ? completed / durationS : NaN };
}
