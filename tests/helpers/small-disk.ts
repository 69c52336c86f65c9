import { spawnSync } from "node:child_process";
import { mkdtempSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

function run(command: string, args: string[]): string | null {
  const res = spawnSync(command, args, { encoding: "utf8" });
  return res.status === 0 ? null : `${command} ${args.join(" ")}: ${(res.stderr || res.error?.message || `exit ${res.status}`).trim()}`;
}

function mustRun(command: string, args: string[]): void {
  const failed = run(command, args);
  if (failed) throw new Error(failed);
}

/**
 * A tiny filesystem of its own (a tmpfs, mounted on a fresh directory of this machine) that a test fills
 * up, or remounts read-only, under a process using it: real ENOSPC and EROFS, as a server's disk gives.
 * Needs root (which ignores file permissions, so a chmod cannot make such failures) and a kernel that
 * lets it mount.
 */
export class SmallDisk {
  private constructor(readonly dir: string) {}

  /** Why this process cannot mount one, or null when it can (tried once, on a directory of its own). */
  static unavailable(): string | null {
    if (process.getuid?.() !== 0) return "not root";
    const probe = mkdtempSync(path.join(tmpdir(), "rb-disk-probe-"));
    try {
      const failed = run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]);
      if (failed) return `cannot mount a tmpfs (${failed})`;
      return run("umount", [probe]);
    } finally {
      rmdirSync(probe);
    }
  }

  static mount(size = "1m"): SmallDisk {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-disk-"));
    mustRun("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
    return new SmallDisk(dir);
  }

  /** Every byte taken (by a file the disk's user does not know of): the next write that needs space fails with ENOSPC. */
  fill(): void {
    try {
      writeFileSync(path.join(this.dir, "filler"), Buffer.alloc(64 * 1024 * 1024));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      return;
    }
    throw new Error(`${this.dir} did not fill up`);
  }

  free(): void {
    rmSync(path.join(this.dir, "filler"), { force: true });
  }

  readOnly(): void {
    mustRun("mount", ["-o", "remount,ro", this.dir]);
  }

  readWrite(): void {
    mustRun("mount", ["-o", "remount,rw", this.dir]);
  }

  /** Lazily should a process still hold a file in it: a test's mount never outlives it. */
  unmount(): void {
    if (run("umount", [this.dir])) mustRun("umount", ["-l", this.dir]);
    rmdirSync(this.dir);
  }
}
