import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
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
