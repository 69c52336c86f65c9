import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import net from "node:net";
import path from "node:path";

export const ROOT = path.resolve(__dirname, "../..");

/** Everything the bench started, stopped in reverse order at the end or on Ctrl-C. */
const children: { name: string; child: ChildProcess }[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/**
 * Starts a long-running child in its own process group (so stopping it takes
 * its descendants too), its output appended to `<logDir>/<name>.log`.
 * The log file is the child's own stdout and stderr: piping them through this
 * process would make the load generator relay every log line, on the same
 * two cores it measures. `maxFiles` raises the open-file limit first: a dispatcher holding 10k
 * sockets, or a process simulating 1,000 runners, needs more than the default.
 */
export function startChild(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; logDir: string; maxFiles?: number; ipc?: boolean }): ChildProcess {
  const log = openSync(path.join(opts.logDir, `${name}.log`), "w");
  const spawnOpts: SpawnOptions = {
    cwd: ROOT,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ["ignore", log, log, ...(opts.ipc ? (["ipc"] as const) : [])],
  };
  let child: ChildProcess;
  if (opts.maxFiles) {
    const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    // The hard limit may be below the wish; then take the hard limit.
    const script = `ulimit -n ${opts.maxFiles} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`;
    child = spawn("sh", ["-c", script], spawnOpts);
  } else {
    child = spawn(cmd, args, spawnOpts);
  }
  // The child holds its own copy.
  closeSync(log);
  children.push({ name, child });
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())));
}

/** SIGTERM to the child's process group, SIGKILL after a grace period. */
export async function stopChild(child: ChildProcess, graceMs = 8000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(-(child.pid as number), s);
    } catch {
      /* already gone */
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), graceMs);
  await exited(child);
  clearTimeout(timer);
  const i = children.findIndex((c) => c.child === child);
  if (i >= 0) children.splice(i, 1);
}

let stopping: Promise<void> | null = null;

/** Stops every child (newest first) and runs the cleanups; safe to call twice. */
export function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const { child } of [...children].reverse()) await stopChild(child);
    for (const fn of [...cleanups].reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })();
  return stopping;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
