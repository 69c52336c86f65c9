import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

/** In the state directory: the pid of the runner process using it. */
const LOCK_FILE = "runner.lock";
/** Lock files this process holds: its own pid in one is a live lock only if listed here. */
const heldLocks = new Set<string>();

export interface StateDirLock {
  /** Lets another runner use the state directory. */
  release(): void;
}

/**
 * Takes the state directory for this process: a lock file holding its pid,
 * made whole under a temporary name and linked into place, which fails if it
 * exists. A lock whose process is gone (killed, power loss) is taken over.
 * Throws, naming the directory and the other pid, while another runner uses it.
 *
 * Limits: a pid is checked in this process's pid namespace only (runners in
 * two containers sharing the directory do not see each other), and a pid
 * reused by an unrelated process makes a stale lock look live (the error says
 * which file to remove).
 */
export function lockStateDir(stateDir: string): StateDirLock {
  const lock = path.resolve(stateDir, LOCK_FILE);
  const mine = `${lock}.${process.pid}.tmp`;
  try {
    writeFileSync(mine, `${process.pid}\n`, { mode: 0o600 });
  } catch (err) {
    // Not left behind at every restart of a runner that cannot write here.
    try {
      unlinkSync(mine);
    } catch {
      // Never made.
    }
    // A full or read-only disk does not make a live runner's directory free: "in use" is what stops this one.
    const holder = liveHolder(lock);
    if (holder !== null) throw inUse(stateDir, lock, holder);
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(
      `state directory ${stateDir} cannot be written (${code}): the runner records there every operation it starts, and runs nothing it cannot record; free space on its disk, or make it writable`,
      { cause: err },
    );
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, lock);
        heldLocks.add(lock);
        return { release: () => releaseLock(lock) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 3) throw err;
      }
      const holder = lockHolder(lock);
      if (holder !== null && holderAlive(lock, holder)) throw inUse(stateDir, lock, holder);
      // Stale: moved aside under a name of our own, so two processes taking it over cannot both remove it...
      const aside = `${lock}.${process.pid}.stale`;
      try {
        renameSync(lock, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      // ...and if what was moved is not the stale lock but one that replaced it meanwhile, it is put back.
      if (lockHolder(aside) !== holder) {
        try {
          linkSync(aside, lock);
        } catch {
          // Taken again meanwhile: the next attempt sees by whom.
        } finally {
          unlinkSync(aside);
        }
        continue;
      }
      unlinkSync(aside);
    }
  } finally {
    unlinkSync(mine);
  }
}

/** The pid in a lock file; null if it is gone or unreadable (a lock file is written whole before it appears). */
function lockHolder(lock: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(lock, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function inUse(stateDir: string, lock: string, holder: number): Error {
  return new Error(`state directory ${stateDir} is in use by another runner (pid ${holder}); stop it first, or remove ${lock} if no runner is using the directory`);
}

/** The pid of the live process holding the lock (this one, for a lock it holds), or null. */
function liveHolder(lock: string): number | null {
  const holder = lockHolder(lock);
  return holder !== null && holderAlive(lock, holder) ? holder : null;
}

function holderAlive(lock: string, pid: number): boolean {
  // Our own pid from an earlier life (a restarted container's pid 1...), unless this process holds the lock.
  if (pid === process.pid) return heldLocks.has(lock);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, under another user.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function releaseLock(lock: string): void {
  if (!heldLocks.delete(lock)) return;
  // Still ours unless removed by hand.
  if (lockHolder(lock) === process.pid) unlinkSync(lock);
}
