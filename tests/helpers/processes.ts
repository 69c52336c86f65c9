import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import path from "node:path";

export const ROOT = path.resolve(__dirname, "../..");

/**
 * The runner as servers run it: the single-file build (`pnpm build:runner`, which `pnpm test` runs), which
 * install.sh and the runner image ship. It also starts in about half the CPU of the unbundled dist/, which
 * loads what the runner never uses from the shared packages (a Redis client, a rate limiter).
 */
export const RUNNER_SCRIPT = "apps/runner/dist/bundle/runbridge-runner.cjs";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * An IPv4 address of this machine other than loopback: a URL to it is, for a client, one that crosses the
 * network, yet it reaches a server of the test (or is refused at once) like loopback does.
 */
export function nonLoopbackAddress(): string {
  const address = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .find((a) => a.family === "IPv4" && !a.internal);
  if (!address) throw new Error("this test needs a network interface besides loopback, with an IPv4 address");
  return address.address;
}

/** Listens on a free loopback port; resolves with the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}

/**
 * Starts a server process on a free port and waits until it says `ready`. The
 * port is only free when picked: another test worker may bind it before the
 * process does, so a start that fails with EADDRINUSE is tried on another port.
 */
export async function startOnFreePort(start: (port: number) => Proc, ready: RegExp, attempts = 5): Promise<{ proc: Proc; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = start(port);
    try {
      await proc.waitForOutput(ready);
      return { proc, port };
    } catch (err) {
      // A start that never got ready is nobody's to stop else (the caller keeps only a ready one):
      // left running, it and its output pipes would outlive the test file and keep a jest worker from exiting.
      const retry = attempt < attempts && !proc.running && proc.output.includes("EADDRINUSE");
      await proc.stop("SIGKILL");
      if (!retry) throw err;
    }
  }
}

/** A child process of ours whose output is kept for assertions (and secret scans). */
export class Proc {
  output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error("process has no pid");
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitForOutput(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (!this.running) throw new Error(`process exited before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A script of the repository as a process of its own, on this Node or on `node` (another version's binary). */
export function startNode(script: string, env: NodeJS.ProcessEnv, extraArgs: string[] = [], node = process.execPath): Proc {
  const child = spawn(node, [path.join(ROOT, script), ...extraArgs], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Proc(child);
}

export async function waitFor<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
