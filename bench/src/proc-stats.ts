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

/** CPU seconds so far of each process of a group, by pid (one entry for a single process). */
export type CpuProbe = () => Map<number, number>;

export function processCpu(pid: number, read: (pid: number) => number = cpuSeconds): CpuProbe {
  return () => new Map([[pid, read(pid)]]);
}

export function groupCpu(pids: () => number[]): CpuProbe {
  return () => {
    const out = new Map<number, number>();
    for (const pid of pids()) {
      try {
        out.set(pid, cpuSeconds(pid));
      } catch {
        // Gone since the listing.
      }
    }
    return out;
  };
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

/**
 * CPU each group used while `work` ran, divided by the operations it
 * completed: milliseconds of CPU per operation, by process.
 */
export async function cpuPerOperation<T extends { completed: number }>(probes: Record<string, CpuProbe>, work: () => Promise<T>): Promise<{ result: T; cpuMsPerOp: Record<string, number> }> {
  const before = new Map(Object.entries(probes).map(([name, probe]) => [name, probe()]));
  const result = await work();
  const cpuMsPerOp: Record<string, number> = {};
  for (const [name, probe] of Object.entries(probes)) {
    cpuMsPerOp[name] = result.completed > 0 ? (usedBetween(before.get(name) ?? new Map(), probe()) * 1000) / result.completed : NaN;
  }
  return { result, cpuMsPerOp };
}

/** Share of one core a process used over `windowMs` (0.05 = 5 % of one core). */
export async function cpuShare(pid: number, windowMs: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  await sleep(windowMs);
  return (cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000);
}
