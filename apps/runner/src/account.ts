import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { userInfo } from "node:os";

/** The runner cannot become the account it was told to run as: a configuration error. */
export class AccountSwitchError extends Error {}

export interface SwitchedAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /**
   * Whether commands, which run as the same account, are kept out of the
   * runner's /proc files (its environment holds the token). False where the
   * kernel keeps processes that changed account dumpable (fs.suid_dumpable=1).
   */
  environmentProtected: boolean;
}

type Posix = NodeJS.Process & Required<Pick<NodeJS.Process, "getuid" | "geteuid" | "getgid" | "getegid" | "setuid" | "setgid" | "setgroups">>;

function posixProcess(): Posix {
  const p = process;
  if (!p.getuid || !p.geteuid || !p.getgid || !p.getegid || !p.setuid || !p.setgid || !p.setgroups) {
    throw new AccountSwitchError("RUNBRIDGE_RUN_AS needs a POSIX system (there is no account to switch to here)");
  }
  return p as Posix;
}

/** Runs `id` for the account: the system's account databases decide (NSS: LDAP and the like too). */
function idOutput(flag: "-u" | "-g" | "-G", name: string): number[] {
  let out: string;
  try {
    out = execFileSync("id", [flag, "--", name], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch {
    throw new AccountSwitchError(`RUNBRIDGE_RUN_AS names no account on this machine: ${name}`);
  }
  // Digits only: an empty answer must never read as 0, which is root.
  const text = out.trim();
  if (!/^\d+(\s+\d+)*$/.test(text)) throw new AccountSwitchError(`could not read account ${name}'s ids (id ${flag} printed ${JSON.stringify(out)})`);
  return text.split(/\s+/).map(Number);
}

function idOf(flag: "-u" | "-g", name: string): number {
  const [id] = idOutput(flag, name);
  if (id === undefined) throw new AccountSwitchError(`could not read account ${name}'s ids`);
  return id;
}

/**
 * Started as root with RUNBRIDGE_RUN_AS, the runner becomes that account for
 * good before it opens anything: its groups, then its group, then its user,
 * and checks that root cannot be taken back. Commands run as that account
 * too; what they cannot do any more is read the runner's token. A process
 * that changed its user is marked not dumpable by the kernel, which makes
 * its /proc/<pid>/environ and memory readable by root only — a runner
 * started directly as the account (systemd's User=) leaves its environment
 * readable to every command at /proc/$PPID/environ.
 *
 * Null when there is nothing to switch: no account named, or root named.
 * HOME, USER and LOGNAME are set to the account's, as a login would.
 */
export function switchAccount(name: string): SwitchedAccount | null {
  if (name === "") return null;
  const proc = posixProcess();
  const uid = idOf("-u", name);
  const gid = idOf("-g", name);
  const current = proc.getuid();
  if (current === uid && uid === 0) return null;
  if (current !== 0) {
    throw new AccountSwitchError(
      `RUNBRIDGE_RUN_AS=${name} needs the runner started as root (it switches to ${name} itself, so that commands cannot read its token); it was started as uid ${current}. Start it as root, or unset RUNBRIDGE_RUN_AS`,
    );
  }
  // Supplementary groups first (e.g. docker, for deploys), while still allowed to set them.
  proc.setgroups(idOutput("-G", name));
  proc.setgid(gid);
  proc.setuid(uid);
  if (proc.getuid() !== uid || proc.geteuid() !== uid || proc.getgid() !== gid || proc.getegid() !== gid) {
    throw new AccountSwitchError(`switching to ${name} did not take: uid ${proc.getuid()}/${proc.geteuid()}, gid ${proc.getgid()}/${proc.getegid()}`);
  }
  let regained = false;
  try {
    proc.setuid(0);
    regained = true;
  } catch {
    // What must happen: root is gone for good.
  }
  if (regained) throw new AccountSwitchError(`after switching to ${name} the runner could become root again`);

  const info = userInfo();
  process.env.HOME = info.homedir;
  process.env.USER = info.username;
  process.env.LOGNAME = info.username;
  let environmentProtected = false;
  try {
    environmentProtected = statSync("/proc/self/environ").uid === 0;
  } catch {
    // No /proc: nothing there to read the token from either, but nothing to confirm it by.
  }
  return { name, uid, gid, home: info.homedir, environmentProtected };
}

/**
 * HOME, USER and LOGNAME for commands where nothing set them: systemd gives them only to units with
 * User=, so a runner running as root (no RUNBRIDGE_RUN_AS) left commands without HOME, and git, npm and
 * docker fail without it. What is set is kept; an account with no passwd entry (a container) gets none.
 */
export function fillLoginVariables(env: NodeJS.ProcessEnv = process.env): void {
  let info: { homedir: string; username: string };
  try {
    info = userInfo();
  } catch {
    return;
  }
  env.HOME ??= info.homedir;
  env.USER ??= info.username;
  env.LOGNAME ??= info.username;
}
