import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
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

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) — utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** Share of one core a process used over `windowMs` (0.05 = 5 % of one core). */
export async function cpuShare(pid: number, windowMs: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  await sleep(windowMs);
  return (cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000);
}
