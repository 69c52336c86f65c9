import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * `binary` from Debian's package `pkg` when it is missing (the bench installs
 * what it measures with, as it needs root for little else); undefined once it
 * is there, or the reason it cannot be had.
 */
export function ensureDebianPackage(binary: string, pkg: string, log: (line: string) => void): string | undefined {
  if (existsSync(binary)) return undefined;
  if (!existsSync("/usr/bin/apt-get")) return `${binary} is missing and apt-get is not available to install ${pkg}`;
  if (process.getuid?.() !== 0) return `${binary} is missing and installing ${pkg} needs root`;
  log(`installing ${pkg} with apt-get (${binary} is missing) ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", pkg], { env, encoding: "utf8", timeout: 240_000 });
  let r = install();
  if (r.status !== 0) {
    // A fresh machine may have no package lists yet.
    spawnSync("apt-get", ["update", "-q"], { env, encoding: "utf8", timeout: 240_000 });
    r = install();
  }
  if (r.status !== 0 || !existsSync(binary)) return `apt-get install ${pkg} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join(" | ")}`;
  return undefined;
}
