import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { FailureExitCode, Limits, RunnerTimings, storableText, type OperationResult, type StartOperation, type TerminalStatus } from "@runbridge/contracts";
import { TailCapture } from "./capture";
import { maskHeadFragment } from "./head-fragment";
import { SecretMasker } from "./masking";
import { deliverableText } from "./result-limits";

export interface ExecutorOptions {
  workdir: string;
  rebootCommand: string;
  killGraceMs: number;
  /** Environment every command inherits (the runner's own, minus its secrets). */
  baseEnv: NodeJS.ProcessEnv;
  /** The time start stamps are written in (the platform's, as the runner estimates it; see PlatformClock). */
  now: () => number;
}

export interface Execution {
  result: Promise<OperationResult>;
  /** Stops the whole process tree: SIGTERM, then SIGKILL after the grace period. */
  cancel: (reason: string) => void;
  /** Stops it the same way, but as a failure (`error` says why): nobody asked for this operation to end. */
  kill: (error: string) => void;
  /** Settles once a stop's SIGKILL has gone to the group (at once when it was never stopped). */
  killed: () => Promise<void>;
}

type OutputHook = (stream: "stdout" | "stderr", data: string, offset: number) => void;

/** The runner's own settings that are not RUNBRIDGE_*: an application a deploy starts must not take the runner's LOG_LEVEL for its own. */
const RUNNER_SETTINGS = new Set(["LOG_LEVEL"]);

/** The runner's own variables (its token above all) never reach commands. */
export function inheritableEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("RUNBRIDGE_") && !RUNNER_SETTINGS.has(k)));
}

function commandLine(op: StartOperation, opts: ExecutorOptions): { file: string; args: string[] } {
  switch (op.spec.kind) {
    case "shell":
      return { file: "/bin/sh", args: ["-c", op.spec.command] };
    case "reboot":
      return { file: "/bin/sh", args: ["-c", opts.rebootCommand] };
    case "argv": {
      const [file, ...args] = op.spec.argv;
      if (!file) throw new Error("empty argv");
      return { file, args };
    }
  }
}

/** What a spawn failing for lack of a resource means on the server, for whoever reads the operation's error. */
const SPAWN_LIMITS: Record<string, string> = {
  EAGAIN: " (the server's limit on processes was reached: the runner account's RLIMIT_NPROC, or its cgroup's pids.max)",
  EMFILE: " (the runner's limit on open files was reached: too many operations or their pipes at once)",
  ENFILE: " (the server's limit on open files was reached)",
  ENOMEM: " (the server is out of memory)",
};

/**
 * After the command's shell exits, its result is taken once its pipes close, or, when background
 * processes it started hold them open, once no output has come for this long (what those print
 * later is theirs, read and dropped) — but no later than EXIT_OUTPUT_MAX_WAIT_MS after the exit,
 * for a background process that never stops printing.
 */
const EXIT_QUIET_MS = 250;
const EXIT_OUTPUT_MAX_WAIT_MS = RunnerTimings.exitOutputMaxWaitMs;
/** How long after SIGKILL a command that has not exited is given up on (see stopTree). */
const UNKILLABLE_AFTER_MS = RunnerTimings.unkillableAfterMs;

/** A no-op 'error' listener defined outside any operation's scope (see execute). */
const ignoreError = (): void => undefined;

export function failedResult(operationId: string, startedAt: string, error: string): OperationResult {
  return { operationId, status: "failed", exitCode: null, stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false, durationMs: 0, startedAt, error };
}

/**
 * Runs one operation in its own process group, so a timeout or cancel reaches
 * every process the command started, not just the shell.
 */
export function execute(op: StartOperation, opts: ExecutorOptions, onOutput: OutputHook): Execution {
  const startedAt = new Date(opts.now()).toISOString();
  const started = process.hrtime.bigint();
  let child: ChildProcess | null = null;
  let endReason: { status: TerminalStatus; error: string } | null = null;
  /**
   * The command (the shell) has exited: its outcome is its exit status. A
   * cancel, a timeout or a stop arriving while the result is being put
   * together must not turn it into another outcome, nor kill what it left
   * running on purpose (`nohup app &`).
   */
  let exited = false;
  let sigkillSent: Promise<void> = Promise.resolve();
  /** Ends the operation without its command (set once the command runs; see stopTree). */
  let abandon: (() => void) | null = null;

  const killGroup = (signal: NodeJS.Signals) => {
    if (child?.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // Group already gone.
    }
  };
  const stopTree = (status: TerminalStatus, error: string) => {
    if (endReason || exited) return;
    endReason = { status, error };
    killGroup("SIGTERM");
    // SIGKILL the group even if the shell exits meanwhile: its children may ignore TERM.
    sigkillSent = new Promise((resolve) =>
      setTimeout(() => {
        killGroup("SIGKILL");
        resolve();
        // A process in uninterruptible sleep (a hung disk or network file system, a frozen cgroup)
        // outlives even SIGKILL, and its exit may never come: the operation ends without it rather
        // than stay running for good, with its CI job, its cancel and the next deploys waiting on it.
        setTimeout(() => {
          if (!exited) abandon?.();
        }, UNKILLABLE_AFTER_MS).unref();
      }, opts.killGraceMs),
    );
  };

  const result = (async (): Promise<OperationResult> => {
    const cwd = path.resolve(opts.workdir, op.cwd ?? ".");

    const secrets = Object.values(op.env ?? {}).concat(op.stdin ? [op.stdin] : []);
    const masker = new SecretMasker(secrets);
    const { file, args } = commandLine(op, opts);
    // Platform variables (op.vars) come last, after the inherited env had RUNBRIDGE_* stripped,
    // so they survive and cannot be shadowed; they are not secrets, so the masker never sees them.
    const env = { ...opts.baseEnv, ...(op.env ?? {}), ...(op.vars ?? {}) };
    const captures = { stdout: new TailCapture(Limits.outputCapBytes), stderr: new TailCapture(Limits.outputCapBytes) };

    return new Promise<OperationResult>((resolve) => {
      let spawnError: Error | null = null;
      let exitCode: number | null = null;
      let exitSignal: NodeJS.Signals | null = null;
      let settled = false;
      // Declared before finish(): a spawn that throws at once (ENOTDIR, EACCES) finishes before any timer exists.
      let timeoutTimer: NodeJS.Timeout | undefined = undefined;
      const finish = () => {
        if (settled) return;
        settled = true;
        if (timeoutTimer) clearTimeout(timeoutTimer);
        const durationMs = Number((process.hrtime.bigint() - started) / 1_000_000n);
        if (spawnError) {
          const e = spawnError as NodeJS.ErrnoException;
          // The working directory is not checked up front (a file-system round trip on every
          // operation): a bad one makes the spawn fail, and only then is it looked at.
          const problem = workdirProblem(cwd);
          const why = problem ?? (e.code === "ENOENT" ? `${file}: command not found on the server` : `could not start ${file}: ${e.message}${SPAWN_LIMITS[e.code ?? ""] ?? ""}`);
          const failed = { ...failedResult(op.operationId, startedAt, why), durationMs };
          if (!op.failureAsExitCode) {
            resolve(failed);
            return;
          }
          // As a shell reports it: 127 for a command it cannot find, 126 for one it cannot run; the reason on stderr.
          const { error: _error, ...ran } = failed;
          resolve({ ...ran, status: "completed", exitCode: !problem && e.code === "ENOENT" ? FailureExitCode.NotFound : FailureExitCode.NotExecutable, stderr: `${why}\n` });
          return;
        }
        const reason = endReason as { status: TerminalStatus; error: string } | null;
        const code = exitCode ?? (exitSignal ? 128 + signalNumber(exitSignal) : null);
        const stdout = finalOutput(captures.stdout, masker, secrets);
        const stderr = finalOutput(captures.stderr, masker, secrets);
        // A cancel stays a cancel: someone asked for it, it is not the command failing.
        const timedOutAsExit = reason?.status === "timeout" && op.failureAsExitCode === true;
        const ended = reason && !timedOutAsExit ? reason : null;
        resolve({
          operationId: op.operationId,
          status: ended ? ended.status : "completed",
          exitCode: ended ? null : timedOutAsExit ? FailureExitCode.TimedOut : code,
          stdout: stdout.text,
          stderr: timedOutAsExit ? `${stderr.text}${stderr.text && !stderr.text.endsWith("\n") ? "\n" : ""}${reason.error}\n` : stderr.text,
          stdoutTruncated: stdout.truncated,
          stderrTruncated: stderr.truncated,
          durationMs,
          startedAt,
          ...(ended ? { error: ended.error } : {}),
        });
      };

      try {
        child = spawn(file, args, { cwd, env, detached: true, stdio: [op.stdin !== undefined ? "pipe" : "ignore", "pipe", "pipe"] });
      } catch (err) {
        spawnError = err as Error;
        finish();
        return;
      }
      const proc = child;
      // Cleared once the result is taken: what background processes print later is read and dropped.
      let capturing = true;
      let lastOutputAt = performance.now();
      timeoutTimer = setTimeout(
        () => stopTree("timeout", `timed out after ${op.timeoutSeconds} s; the process group was killed`),
        op.timeoutSeconds * 1000,
      );

      const streams: NodeJS.ReadableStream[] = [];
      for (const name of ["stdout", "stderr"] as const) {
        const stream = proc[name];
        if (!stream) continue;
        streams.push(stream);
        const decoder = new StringDecoder("utf8");
        const live = masker.streaming();
        let offset = 0;
        // As the result stores it (NUL as U+FFFD, 3 bytes): live offsets count the stored text's bytes, which
        // is what a follower fills gaps and prints the rest from.
        const emit = (raw: string) => {
          if (!raw) return;
          const text = storableText(raw);
          onOutput(name, text, offset);
          offset += Buffer.byteLength(text);
        };
        stream.on("data", (chunk: Buffer) => {
          if (!capturing) return;
          lastOutputAt = performance.now();
          captures[name].push(chunk);
          emit(live.push(decoder.write(chunk)));
        });
        stream.on("end", () => {
          if (capturing) emit(live.push(decoder.end()) + live.flush());
        });
      }
      if (op.stdin !== undefined && proc.stdin) {
        proc.stdin.on("error", ignoreError); // The command may exit without reading it.
        proc.stdin.end(op.stdin);
      }
      proc.on("error", (err) => {
        spawnError = err;
        finish();
      });
      proc.on("exit", (code, signal) => {
        exitCode = code;
        exitSignal = signal;
        exited = true;
        if (timeoutTimer) clearTimeout(timeoutTimer);
        // The pipes close once read to their end, unless background processes hold them open: do not
        // wait for those. Nor close the pipes: a daemon (`nohup app &`, pm2) writing to a closed pipe
        // dies of SIGPIPE. Keep reading and dropping what they write, without that keeping the runner's
        // event loop alive — nor the operation's captures and masker, for as long as the daemon lives.
        const exitedAt = performance.now();
        const letGo = () => {
          // Timers run before the loop reads what waits in the pipes: on a busy runner (its loop seconds
          // behind) this one came due before the command's last output was read, and the result lost
          // it. Decided after the loop's next read (setImmediate), once output has been quiet for a while.
          setImmediate(() => {
            if (settled) return;
            const now = performance.now();
            const quietFor = now - lastOutputAt;
            if (quietFor < EXIT_QUIET_MS && now - exitedAt < EXIT_OUTPUT_MAX_WAIT_MS) {
              setTimeout(letGo, EXIT_QUIET_MS - quietFor).unref();
              return;
            }
            capturing = false;
            finish();
            detach();
          });
        };
        setTimeout(letGo, EXIT_QUIET_MS).unref();
      });
      proc.on("close", () => finish());
      /**
       * Lets go of the process: what it (or what it left running) still writes is read and dropped,
       * without keeping the runner's event loop alive. The pipes hold the child process until they
       * close, and its listeners hold this operation (its env values, its captured output): dropped,
       * or they stay in memory as long as the process lives. (A listener made here would hold them
       * too, through its scope: one from the module's.)
       */
      const detach = () => {
        for (const stream of streams) {
          stream.removeAllListeners("data").removeAllListeners("end").resume();
          if (stream instanceof Socket) stream.unref();
        }
        proc.removeAllListeners();
        proc.on("error", ignoreError);
        proc.unref();
      };
      abandon = () => {
        if (!endReason) return;
        endReason = {
          ...endReason,
          error: `${endReason.error}; its shell (pid ${proc.pid}) had still not exited ${UNKILLABLE_AFTER_MS / 1000} s after SIGKILL (a process in uninterruptible sleep: a hung disk or network mount?), so the operation ends without it`,
        };
        capturing = false;
        finish();
        detach();
      };
    });
    // A result, always, whatever went wrong here: never an operation left running.
  })().catch((err: unknown) => failedResult(op.operationId, startedAt, `the runner could not run it: ${String(err)}`));

  return {
    result,
    // The spawn happens within execute() itself, so a cancel always finds the child (or a settled result).
    cancel: (reason: string) => {
      if (child) stopTree("cancelled", reason);
    },
    kill: (error: string) => {
      if (child) stopTree("failed", error);
    },
    killed: () => sigkillSent,
  };
}

/**
 * A stream's capture as the result carries it: masked while the text is still
 * what the command printed, then made storable and small enough to send.
 */
function finalOutput(capture: TailCapture, masker: SecretMasker, secrets: readonly string[]): { text: string; truncated: boolean } {
  const raw = capture.text();
  // A cut head can begin inside a secret, whose remaining tail the masker no longer recognises.
  const masked = masker.mask(capture.truncated ? maskHeadFragment(raw, secrets) : raw);
  const sent = deliverableText(masked);
  return { text: sent.text, truncated: capture.truncated || sent.cut };
}

/** Why `cwd` cannot be a command's working directory, or null when it can. */
function workdirProblem(cwd: string): string | null {
  try {
    if (!statSync(cwd).isDirectory()) return `working directory ${cwd} is not a directory`;
    // A directory the account may not enter made the spawn fail with EACCES, which read as the shell's fault.
    accessSync(cwd, fsConstants.X_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") return `working directory ${cwd} is not accessible to the runner's account ${accountName()} (permission denied on it or on a directory above it)`;
    if (code === "ENOTDIR") return `working directory ${cwd} is not a directory (a part of its path is a file)`;
    if (code === "ELOOP") return `working directory ${cwd} cannot be reached (too many levels of symbolic links)`;
    return `working directory ${cwd} does not exist on the server`;
  }
}

function accountName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? "?"}`;
  }
}

/** The platform's number for a signal (a shell reports death by signal n as exit code 128 + n). */
function signalNumber(sig: NodeJS.Signals): number {
  return os.constants.signals[sig] ?? 0;
}
