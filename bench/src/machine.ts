import { spawnSync } from "node:child_process";
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from "node:fs";
import os from "node:os";
import { Client } from "pg";
import { createRedis } from "@runbridge/common";

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  kernel: string;
  node: string;
  postgres: string;
  redis: string;
  openssh: string;
}

function osName(): string {
  if (!existsSync("/etc/os-release")) return os.type();
  const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync("/etc/os-release", "utf8"));
  return m?.[1] ?? os.type();
}

async function postgresVersion(url: string): Promise<string> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ server_version: string }>("SHOW server_version");
    return r.rows[0]?.server_version ?? "unknown";
  } finally {
    await c.end();
  }
}

async function redisVersion(url: string): Promise<string> {
  const redis = createRedis(url);
  try {
    const info = await redis.info("server");
    return /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
  } finally {
    redis.disconnect();
  }
}

/** The version line of the ssh client (it prints it on stderr), or "not installed". */
export function opensshVersion(): string {
  const r = spawnSync("ssh", ["-V"], { encoding: "utf8" });
  if (r.error) return "not installed";
  return (r.stderr || r.stdout).trim().split(",")[0] ?? "unknown";
}

export async function describeMachine(databaseUrl: string, redisUrl: string): Promise<Machine> {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: osName(),
    kernel: os.release(),
    node: process.version,
    postgres: await postgresVersion(databaseUrl),
    redis: await redisVersion(redisUrl),
    openssh: opensshVersion(),
  };
}

/** What the kernel charges on this machine for the two things every process of the path does all the time. */
export interface KernelCosts {
  /** One fstat(2) from Node, binding included: the price of a cheap system call. */
  syscallUs: number;
  /** One first write to a fresh 4 KiB page (a minor page fault, zeroing included): the price of new memory and of copy-on-write after a fork. */
  pageFaultUs: number;
}

/**
 * Measured, not assumed: virtual machines differ by an order of magnitude
 * here (nested virtualisation, shadow page tables), and every figure of the
 * run that spawns processes or grows memory moves with them.
 */
export function measureKernelCosts(): KernelCosts {
  const fd = openSync("/dev/null", "r");
  let syscallUs = Infinity;
  try {
    for (let round = 0; round < 3; round++) {
      const n = 20_000;
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fstatSync(fd);
      syscallUs = Math.min(syscallUs, Number(process.hrtime.bigint() - t) / 1000 / n);
    }
  } finally {
    closeSync(fd);
  }
  // Large allocations are fresh anonymous mappings; all three are kept until the end so none reuses touched memory.
  const kept: Buffer[] = [];
  let pageFaultUs = Infinity;
  const page = 4096;
  for (let round = 0; round < 3; round++) {
    const b = Buffer.allocUnsafeSlow(32 * 2 ** 20);
    kept.push(b);
    const t = process.hrtime.bigint();
    for (let i = 0; i < b.length; i += page) b[i] = 1;
    pageFaultUs = Math.min(pageFaultUs, Number(process.hrtime.bigint() - t) / 1000 / (b.length / page));
  }
  kept.length = 0;
  return { syscallUs, pageFaultUs };
}
