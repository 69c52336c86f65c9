import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Proc } from "./processes";

/** The directories of the machine that a private machine replaces with copies of its own. */
const REPLACED = ["/etc", "/opt", "/var/lib"] as const;

/**
 * Why this process cannot make a private machine, or null when it can: it
 * needs root (installers create accounts and chown), a kernel that lets it
 * open a mount namespace, and Node, the repository and the temporary
 * directory outside the directories the machine replaces (they would vanish
 * in it: Node under /opt on some CI hosts, a checkout under /var/lib).
 */
export function privateMachineUnavailable(root: string): string | null {
  if (process.getuid?.() !== 0) return "not root";
  if (spawnSync("unshare", ["--mount", "--propagation", "private", "true"]).status !== 0) return "no mount namespaces here";
  for (const [what, where] of [
    ["Node", realpathSync(process.execPath)],
    ["the repository", realpathSync(root)],
    ["the temporary directory", realpathSync(tmpdir())],
  ] as const) {
    if (REPLACED.some((d) => where === d || where.startsWith(`${d}/`))) return `${what} is under a directory the private machine replaces (${where})`;
  }
  return null;
}

/**
 * This machine as a root-run installer sees it, but with /etc (a copy of the
 * real one), /opt and /var/lib (empty) of its own: what runs in it creates
 * accounts with useradd, chowns, writes /etc/sudoers.d... through the real
 * tools, in a mount namespace, and the machine's own files are never touched.
 * Everything else (/usr, /tmp, the network, the process table) is shared, so
 * a process started in it can reach the test's services on loopback.
 */
export class PrivateMachine {
  private constructor(private readonly dir: string) {}

  static create(): PrivateMachine {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-machine-"));
    chmodSync(dir, 0o755);
    cpSync("/etc", path.join(dir, "etc"), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    for (const d of REPLACED.slice(1)) mkdirSync(path.join(dir, d.slice(1)), { recursive: true, mode: 0o755 });
    return new PrivateMachine(dir);
  }

  /** Where a path of the machine (one under /etc, /opt or /var/lib) is, seen from the test. */
  file(machinePath: string): string {
    if (!REPLACED.some((d) => machinePath === d || machinePath.startsWith(`${d}/`))) throw new Error(`${machinePath} is the real machine's, not the private one's`);
    return path.join(this.dir, machinePath.slice(1));
  }

  private argv(command: string[]): string[] {
    // The copies are bound over the originals inside the namespace, then the command replaces the shell.
    const binds = REPLACED.map((d) => `mount --bind "$0${d}" ${d}`).join(" && ");
    return ["--mount", "--propagation", "private", "sh", "-c", `${binds} && exec "$@"`, this.dir, ...command];
  }

  run(command: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): SpawnSyncReturns<string> {
    return spawnSync("unshare", this.argv(command), { encoding: "utf8", input: opts.input ?? "", env: opts.env ?? { PATH: process.env.PATH }, cwd: opts.cwd });
  }

  /** A shell script run as root in the machine; throws with its output if it fails. */
  sh(script: string): string {
    const res = this.run(["sh", "-euc", script]);
    if (res.status !== 0) throw new Error(`script failed (${res.status}) in the private machine:\n${script}\n${res.stdout}${res.stderr}`);
    return res.stdout;
  }

  /** A long-running process in the machine (its cwd is a path of the machine). */
  start(command: string[], opts: { env: NodeJS.ProcessEnv; cwd: string }): Proc {
    const [first, ...rest] = command;
    if (!first) throw new Error("no command");
    return new Proc(spawn("unshare", this.argv(["sh", "-c", 'cd "$0" && exec "$@"', opts.cwd, first, ...rest]), { env: opts.env, stdio: ["ignore", "pipe", "pipe"] }));
  }

  /** An account's passwd entry in the machine, or null. */
  account(name: string): { uid: number; gid: number; home: string; shell: string } | null {
    for (const line of readFileSync(this.file("/etc/passwd"), "utf8").split("\n")) {
      const [user, , uid, gid, , home, shell] = line.split(":");
      if (user === name) return { uid: Number(uid), gid: Number(gid), home: home ?? "", shell: shell ?? "" };
    }
    return null;
  }

  /** The members of a group in the machine (its /etc/group line), or null without the group. */
  groupMembers(name: string): string[] | null {
    for (const line of readFileSync(this.file("/etc/group"), "utf8").split("\n")) {
      const fields = line.split(":");
      if (fields[0] === name) return (fields[3] ?? "").split(",").filter(Boolean);
    }
    return null;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
