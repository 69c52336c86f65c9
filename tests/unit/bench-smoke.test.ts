import { interleavedLatency, measureThroughput, mergeThroughput, sampler } from "../../bench/src/load";
import { costPerOperation } from "../../bench/src/proc-stats";
import { checkTargets, renderMarkdown } from "../../bench/src/report";
import type { BenchResults } from "../../bench/src/results";
import { percentile, ratio, summarize } from "../../bench/src/stats";

const latency = (p50: number, p99: number) => ({ samples: 500, p50, p95: p99, p99, mean: p50, max: p99, failures: 0 });
const throughput = (ops: number) => [1, 8, 32].map((concurrency) => ({ concurrency, durationS: 5, completed: ops * 5, failures: 0, opsPerSecond: ops }));
const rejection = (status: number, perSecond: number) => ({
  expectedStatus: status,
  connections: 50,
  durationS: 10,
  perSecond,
  total: perSecond * 10,
  statusCodes: { [String(status)]: perSecond * 10 },
  errors: 0,
  latencyP50Ms: 5,
  latencyP99Ms: 20,
});

function results(overrides: Partial<BenchResults> = {}): BenchResults {
  return {
    startedAt: "2026-11-28T16:00:00.000Z",
    finishedAt: "2026-11-28T16:03:00.000Z",
    command: "pnpm bench",
    tree: { commit: "abc123", dirty: false },
    machine: { cores: 2, cpuModel: "cpu", memoryGiB: 24, os: "Debian", kernel: "6", node: "v20", postgres: "15", redis: "7", openssh: "OpenSSH_9" },
    loadAverage: { start: [0.5, 0.5, 0.5], end: [1, 1, 1] },
    settings: { warmup: 200, throughputSeconds: 5, rejectionSeconds: 10, idleCpuSeconds: 5 },
    exec: { latency: latency(8, 20), throughput: throughput(200), nonCompleted: {} },
    spawn: { latency: latency(2.6, 5), throughput: throughput(300) },
    ssh: { fresh: latency(280, 400), multiplexed: latency(28, 40) },
    rejection: { unauthorized: rejection(401, 6000), rateLimited: rejection(429, 5500), floor: rejection(401, 24000) },
    scale: {
      levels: [1000, 5000, 10000].map((n) => ({ simulatedRunners: n, dispatcherRssMiB: n / 20, dispatcherIdleCpuPct: 1 })),
      connectErrors: 0,
    },
    ...overrides,
  };
}

describe("bench helpers", () => {
  it("takes nearest-rank percentiles", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    const s = summarize([5, 1, 3]);
    expect([s.p50, s.max, s.mean]).toEqual([3, 5, 3]);
  });

  it("never turns a missing baseline into a ratio", () => {
    expect(ratio(10, 4)).toBe(2.5);
    expect(ratio(undefined, 4)).toBeNaN();
    expect(ratio(10, 0)).toBeNaN();
  });

  it("counts only successful operations as throughput", async () => {
    let n = 0;
    const r = await measureThroughput(async () => ++n % 2 === 0, 4, 50);
    expect(r.completed + r.failures).toBe(n);
    expect(r.failures).toBeGreaterThan(0);
    expect(r.opsPerSecond).toBeCloseTo(r.completed / r.durationS);
  });

  it("takes latency samples in alternating blocks, each operation its own count, and counts failures", async () => {
    const calls: string[] = [];
    const op = (name: string, ok = true) => async () => {
      calls.push(name);
      return ok;
    };
    const r = await interleavedLatency({ a: { sample: sampler(op("a")), samples: 6, warmup: 1 }, b: { sample: sampler(op("b", false)), samples: 3, warmup: 0 } }, 3);
    // The warm-up first, then a a b, a a b, a a b.
    expect(calls.join("")).toBe("a" + "aab".repeat(3));
    expect(r.a).toMatchObject({ samples: 6, failures: 0 });
    expect(r.b).toMatchObject({ samples: 3, failures: 3 });
  });

  it("merges the rounds of a throughput measurement into one figure", () => {
    const merged = mergeThroughput([
      { concurrency: 32, durationS: 1, completed: 100, failures: 1, opsPerSecond: 100 },
      { concurrency: 32, durationS: 3, completed: 500, failures: 0, opsPerSecond: 166.7 },
    ]);
    expect(merged).toEqual({ concurrency: 32, durationS: 4, completed: 600, failures: 1, opsPerSecond: 150 });
  });

  it("compares SSH with the exec samples taken between the SSH ones", () => {
    // Exec measured alongside SSH was slower than in the exec phase: the ratios use it.
    const r = results({ ssh: { fresh: latency(280, 400), multiplexed: latency(28, 40), exec: latency(14, 20) } });
    const checks = checkTargets(r);
    expect(checks.find((c) => c.target.startsWith("≥ 25×"))).toMatchObject({ figure: "20.0×", pass: false });
    expect(checks.find((c) => c.target.startsWith("≥ 2.5×"))).toMatchObject({ figure: "2.00×", pass: false });
    expect(renderMarkdown(r, checks)).toContain("| runbridge exec, between the SSH samples | 14.0 ms |");
  });

  it("passes every target when the figures meet them", () => {
    const checks = checkTargets(results());
    expect(checks.filter((c) => !c.pass)).toEqual([]);
    expect(checks).toHaveLength(8);
  });

  it("fails the targets that are missed, and a skipped measurement, instead of passing them", () => {
    const r = results({
      exec: { latency: latency(12, 30), throughput: throughput(100), nonCompleted: { "429": 3 } },
      ssh: { skipped: "no sshd" },
      scale: { levels: [{ simulatedRunners: 1000, dispatcherRssMiB: 100, dispatcherIdleCpuPct: 1 }], connectErrors: 0, skipped: "timed out" },
      rejection: { unauthorized: rejection(401, 4999), rateLimited: rejection(429, 5000) },
    });
    const failed = checkTargets(r)
      .filter((c) => !c.pass)
      .map((c) => c.target);
    expect(failed).toEqual([
      "exec p50 ≤ 10 ms at concurrency 1",
      "exec p99 ≤ 25 ms at concurrency 1",
      "throughput at concurrency 32 ≥ 50 % of direct spawn",
      "≥ 25× faster than a fresh SSH connection (p50)",
      "≥ 2.5× faster than multiplexed SSH (p50)",
      "10,000 connected runners on one dispatcher < 1 GiB RSS",
      "≥ 5,000 rejected requests/s on the gateway (401)",
    ]);
    const md = renderMarkdown(r, checkTargets(r));
    expect(md).toContain("Skipped: no sshd");
    expect(md).toContain("429: 3");
    expect(md).toContain("| exec p50 ≤ 10 ms at concurrency 1 | 12.0 ms | **FAIL** |");
  });

  it("shows the CPU each process spends per operation, and the throughput ceiling it implies", () => {
    const r = results();
    r.exec.cpuMsPerOp = { gateway: 1, runner: 2.5, PostgreSQL: 1.5 };
    r.exec.faultsPerOp = { gateway: 10, runner: 120, PostgreSQL: 4 };
    r.spawn.cpuMsPerOp = { "load generator": 0.5, "sh -c true": 1.5 };
    r.spawn.faultsPerOp = { "load generator": 90, "sh -c true": 150 };
    r.kernelCosts = { syscallUs: 0.5, pageFaultUs: 12.25 };
    const md = renderMarkdown(r, checkTargets(r));
    expect(md).toContain("| gateway | 1.00 | 10 | load generator | 0.50 | 90 |");
    expect(md).toContain("| PostgreSQL | 1.50 | 4 |  |  |  |");
    expect(md).toContain("| **total** | **5.00** | **134** | **total** | **2.00** | **240** |");
    expect(md).toContain("a system call (fstat from Node) 0.50 µs, a page fault on fresh memory 12.25 µs");
    // 2 cores: 2,000 ms of CPU a second ÷ 5 ms per exec, ÷ 2 ms per spawn.
    expect(md).toContain("400/s for exec, 1,000/s for the bare spawn");
    // Each rejection rate beside the floor measured in the same run (24,000/s in these results).
    expect(md).toContain("| 401, well-formed unknown `rca_` key | 6,000/s | 25 % |");
    expect(md).toContain("| 429, key with rate_limit 1, exhausted | 5,500/s | 23 % |");
    expect(md).toContain("| the floor: a bare `node:http` server giving the same 401 | 24,000/s | 100 % |");
    const { floor: _floor, ...withoutFloor } = r.rejection;
    expect(renderMarkdown({ ...r, rejection: withoutFloor }, checkTargets(r))).toContain("| 401, well-formed unknown `rca_` key | 6,000/s | – |");
  });

  it("counts CPU per process: one that exits mid-run drops out, one that starts counts from zero", async () => {
    const readings = [
      new Map([
        [1, 5],
        [2, 3],
      ]),
      new Map([
        [2, 4],
        [3, 1],
      ]),
    ];
    let reading = 0;
    let faultReading = 0;
    const { cpuMsPerOp, faultsPerOp } = await costPerOperation(
      { group: { cpu: () => readings[reading++] ?? new Map(), faults: () => readings[faultReading++] ?? new Map() } },
      async () => ({ completed: 1000 }),
    );
    // (4 - 3) + (1 - 0) seconds over 1,000 operations; process 1's 5 s before it exited are not subtracted.
    expect(cpuMsPerOp.group).toBeCloseTo(2);
    // The same readings as fault counts: 2 faults over 1,000 operations.
    expect(faultsPerOp.group).toBeCloseTo(0.002);
  });
});
