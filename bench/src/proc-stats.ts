import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { sleep } from "./procs";

let ticks: number | undefined;

/** Kernel clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
function clockTicks(): number {
  if (ticks === undefined) {
    const out = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    ticks = Number.isFinite(out) && out > 0 ? out : 100;
  }
  return ticks;
}

/** Resident set size in MiB (VmRSS of /proc/<pid>/status). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces); field n of proc(5) is index n - 3. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/** cutime + cstime: CPU of the process's children it has waited for (the commands a runner ran), in seconds. */
export function childrenCpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[13]) + Number(f[14])) / clockTicks();
}

/** minflt: page faults the process took that needed no disk read (first touch of memory, copy-on-write after a fork). */
export function minorFaults(pid: number): number {
  return Number(statFields(pid)[7]);
}

/** cminflt: the same for its children it has waited for. */
export function childrenMinorFaults(pid: number): number {
  return Number(statFields(pid)[8]);
}

/** Processes whose command name is `comm` (e.g. every PostgreSQL backend), whoever started them. */
export function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) pids.push(Number(entry));
    } catch {
      // Gone since the listing.
    }
  }
  return pids;
}

/** A counter so far (CPU seconds, page faults) of each process of a group, by pid (one entry for a single process). */
export type CounterProbe = () => Map<number, number>;

/** What is counted of one process or a group of them: its CPU time and its minor page faults. */
export interface ProcessProbe {
  cpu: CounterProbe;
  faults: CounterProbe;
}

type Reader = (pid: number) => number;

function one(pid: number, read: Reader): CounterProbe {
  return () => new Map([[pid, read(pid)]]);
}

function many(pids: () => number[], read: Reader): CounterProbe {
  return () => {
    const out = new Map<number, number>();
    for (const pid of pids()) {
      try {
        out.set(pid, read(pid));
      } catch {
        // Gone since the listing.
      }
    }
    return out;
  };
}

/** One process. */
export function processProbe(pid: number): ProcessProbe {
  return { cpu: one(pid, cpuSeconds), faults: one(pid, minorFaults) };
}

/** The children a process has waited for (a runner's commands, the spawn baseline's `sh`). */
export function childrenProbe(pid: number): ProcessProbe {
  return { cpu: one(pid, childrenCpuSeconds), faults: one(pid, childrenMinorFaults) };
}

/** Every process with this command name (PostgreSQL's backends, Redis). */
export function namedProbe(comm: string): ProcessProbe {
  const pids = () => pidsNamed(comm);
  return { cpu: many(pids, cpuSeconds), faults: many(pids, minorFaults) };
}

/**
 * CPU a group used between two readings, process by process: one started
 * meanwhile counts from zero; one that exited meanwhile drops out (its last
 * moments are lost) rather than having its earlier CPU subtracted.
 */
function usedBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, seconds] of after) sum += seconds - (before.get(pid) ?? 0);
  return sum;
}

/** What a measured piece of work cost each process, per operation it completed. */
export interface OperationCost<T> {
  result: T;
  cpuMsPerOp: Record<string, number>;
  faultsPerOp: Record<string, number>;
}

/**
 * CPU and minor page faults each group used while `work` ran, divided by the
 * operations it completed: milliseconds of CPU and faults per operation, by process.
 */
export async function costPerOperation<T extends { completed: number }>(probes: Record<string, ProcessProbe>, work: () => Promise<T>): Promise<OperationCost<T>> {
  const read = () => new Map(Object.entries(probes).map(([name, p]) => [name, { cpu: p.cpu(), faults: p.faults() }]));
  const before = read();
  const result = await work();
  const after = read();
  const cpuMsPerOp: Record<string, number> = {};
  const faultsPerOp: Record<string, number> = {};
  for (const name of Object.keys(probes)) {
    const b = before.get(name);
    const a = after.get(name);
    const per = (x: number): number => (result.completed > 0 ? x / result.completed : NaN);
    cpuMsPerOp[name] = per(usedBetween(b?.cpu ?? new Map(), a?.cpu ?? new Map()) * 1000);
    faultsPerOp[name] = per(usedBetween(b?.faults ?? new Map(), a?.faults ?? new Map()));
  }
  return { result, cpuMsPerOp, faultsPerOp };
}

/** Share of one core a process used over `windowMs` (0.05 = 5 % of one core). */
export async function cpuShare(pid: number, windowMs: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  await sleep(windowMs);
  return (cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000);
}
