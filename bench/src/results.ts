import type { LatencyResult, ThroughputResult } from "./load";
import type { KernelCosts, Machine } from "./machine";
import type { RejectionResult } from "./rejection";
import type { SshResult } from "./ssh-baseline";
import type { Stage } from "./stages";

export interface ScaleLevel {
  simulatedRunners: number;
  dispatcherRssMiB: number;
  /** Share of one core over the idle window, in percent. */
  dispatcherIdleCpuPct: number;
  /** Seconds from starting to connect this step's new runners until all were connected. */
  connectSeconds?: number;
}

export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  command: string;
  /** The commit the services ran from, and whether the working tree had uncommitted changes to them. */
  tree: { commit: string; dirty: boolean };
  machine: Machine;
  /** Measured at the start of the run (older result files lack it). */
  kernelCosts?: KernelCosts;
  /** 1, 5 and 15 minute load averages when the run started and ended: other work on the box skews every figure. */
  loadAverage: { start: number[]; end: number[] };
  settings: Record<string, number | string>;
  exec: {
    latency: LatencyResult;
    throughput: ThroughputResult[];
    nonCompleted: Record<string, number>;
    stages?: { operations: number; stages: Stage[] };
    cpuMsPerOp?: Record<string, number>;
    faultsPerOp?: Record<string, number>;
  };
  /** cpuMsPerOp, faultsPerOp: milliseconds of CPU and minor page faults per operation by process, over the throughput run at the highest concurrency. */
  spawn: { latency: LatencyResult; throughput: ThroughputResult[]; cpuMsPerOp?: Record<string, number>; faultsPerOp?: Record<string, number> };
  ssh: SshResult;
  /** floor: a bare node:http server giving the same 401, under the same load (http-floor-worker.ts). */
  rejection: { unauthorized: RejectionResult; rateLimited: RejectionResult; floor?: RejectionResult };
  /** Latency at concurrency 1 of exec requests refused at successive stages of the gateway. */
  ladder?: { label: string; status: number; latency: LatencyResult; unexpected: Record<string, number> }[];
  scale: { levels: ScaleLevel[]; execAtMax?: LatencyResult & { simulatedRunners: number }; connectErrors: number; connectErrorReasons?: Record<string, number>; skipped?: string };
}

export interface TargetCheck {
  target: string;
  figure: string;
  value: number;
  pass: boolean;
}
